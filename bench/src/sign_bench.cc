// payorch-signbench: the RSA part of one PayKKa call, measured in the same
// bench run as the load (same key, same signer code, same machine state), so
// run.sh can split payorchd's CPU per request into RSA and payorch's own
// part. It signs a CreateCheckout body the way the adapter does
// (SignPaykkaRequest: SHA256withRSA-2048 + Base64 + percent-encoding) and
// verifies a response signature the way the adapter does
// (VerifyPaykkaSignatureHeader), each --count times, timing this thread's
// CPU (CLOCK_THREAD_CPUTIME_ID), not wall time: other load on the machine
// does not inflate it. Prints one JSON line:
//   {"sign_us": ..., "verify_us": ..., "count": N}

#include <time.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/clock.h"
#include "adapters/paykka/mapping.h"
#include "adapters/paykka/merchant_config.h"
#include "adapters/paykka/signer.h"
#include "adapters/paykka/signing.h"
#include "bench/src/requests.h"
#include "bench/src/stats.h"
#include "common/crypto.h"

ABSL_FLAG(std::string, merchants_config, "", "payorchd's merchants.json");
ABSL_FLAG(std::string, merchant_id, "M100001", "merchant whose key signs");
ABSL_FLAG(std::string, public_key_file, "",
          "PEM public key of that merchant's key (verifies the signatures "
          "made here; same size as PayKKa's platform key)");
ABSL_FLAG(int, count, 400, "signatures and verifications each");
ABSL_FLAG(std::string, out, "", "write the JSON here too");

namespace payorch::bench {
namespace {

int64_t ThreadCpuNanos() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int Main() {
  auto merchants =
      paykka::LoadMerchantConfigs(absl::GetFlag(FLAGS_merchants_config));
  if (!merchants.ok()) {
    std::fprintf(stderr, "signbench: %s\n",
                 merchants.status().ToString().c_str());
    return 2;
  }
  const paykka::MerchantConfig* m = nullptr;
  for (const auto& c : *merchants) {
    if (c.merchant_id == absl::GetFlag(FLAGS_merchant_id)) m = &c;
  }
  auto pem = ReadFile(absl::GetFlag(FLAGS_public_key_file));
  auto pub = pem.ok() ? RsaPublicKey::Parse(*pem) : pem.status();
  if (m == nullptr || !pub.ok()) {
    std::fprintf(stderr, "signbench: merchant or public key missing\n");
    return 2;
  }
  const int n = std::max(1, absl::GetFlag(FLAGS_count));
  RequestOptions opts;
  opts.merchant_id = m->merchant_id;
  const std::string body = paykka::CreateSessionBody(
      m->merchant_id, MakeCreateCheckout(opts, "signbench-1"));
  int64_t t0 = ThreadCpuNanos();
  for (int i = 0; i < n; ++i) {
    auto h = paykka::SignPaykkaRequest(*m, paykka::kCreateSessionPath, body,
                                       absl::Now());
    if (!h.ok()) return 1;
  }
  const double sign_us = (ThreadCpuNanos() - t0) / 1e3 / n;
  const std::string s = paykka::PaykkaResponseStringToSign("1", "abc", body);
  auto header = paykka::PaykkaSignatureHeader(m->private_key, s);
  if (!header.ok()) return 1;
  t0 = ThreadCpuNanos();
  for (int i = 0; i < n; ++i) {
    if (!paykka::VerifyPaykkaSignatureHeader(*pub, s, *header).ok()) return 1;
  }
  const double verify_us = (ThreadCpuNanos() - t0) / 1e3 / n;
  nlohmann::json j = {
      {"sign_us", sign_us}, {"verify_us", verify_us}, {"count", n}};
  std::printf("%s\n", j.dump().c_str());
  return WriteJsonFile(absl::GetFlag(FLAGS_out), j) ? 0 : 1;
}

}  // namespace
}  // namespace payorch::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "payorch-signbench: CPU per PayKKa request signature and response "
      "verification (see bench/README.md)");
  absl::ParseCommandLine(argc, argv);
  return payorch::bench::Main();
}
