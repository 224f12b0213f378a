// libFuzzer target: the caller policy file (service/caller_policy.h). Any
// input must parse or be rejected with a status, never crash; a policy that
// parses must answer Allows/Knows consistently: an identity it allows
// anything is one it knows, and Allows with a wildcard-free probe never
// grants an RPC outside kPolicyMethods.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "service/caller_policy.h"

namespace {

using payorch::service::CallerPolicy;
using payorch::service::kPolicyMethods;

constexpr const char* kIdentities[] = {"spiffe://shop.example/checkout",
                                       "spiffe://shop.example/billing",
                                       "billing",
                                       "a",
                                       "*",
                                       ""};
constexpr const char* kMerchants[] = {"M1", "M2", "*", ""};

void Probe(const CallerPolicy& policy) {
  for (const char* identity : kIdentities) {
    bool allowed_any = false;
    for (const char* method : kPolicyMethods) {
      for (const char* merchant : kMerchants) {
        allowed_any |= policy.Allows(identity, method, merchant);
      }
    }
    // An RPC the policy cannot name is never allowed by name.
    if (policy.Allows(identity, "Refund", "M1") &&
        !policy.Allows(identity, "GetOrder", "M1")) {
      __builtin_trap();
    }
    if (allowed_any && !policy.Knows(identity)) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto policy = CallerPolicy::Parse(text);
  if (!policy.ok()) {
    if (policy.status().message().empty()) __builtin_trap();
    return 0;
  }
  Probe(*policy);
  return 0;
}
