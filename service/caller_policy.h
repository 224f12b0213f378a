#ifndef PAYORCH_SERVICE_CALLER_POLICY_H_
#define PAYORCH_SERVICE_CALLER_POLICY_H_

// Who may call what: the caller policy file maps each caller identity (the
// URI SAN, else the subject CN, of its verified client certificate) to the
// merchants and RPCs it may use. JSON:
//
//   {"callers": [
//     {"identity": "spiffe://shop.example/checkout",
//      "merchants": ["M1", "M2"],
//      "methods": ["CreateCheckout", "GetSessionStatus", "GetOrder"]},
//     {"identity": "spiffe://shop.example/billing",
//      "merchants": ["*"], "methods": ["*"]}]}
//
// "*" means every merchant / every RPC. Anything not listed is denied.
// Stored-card fields (Order.token, Order.recurring_agreement_id) are returned
// only to callers allowed ChargeRecurring for that merchant.
//
// CallerPolicyWatcher holds the current policy and re-reads the file when its
// modification time or size changes; a file that does not validate is
// rejected (logged) and the previous policy keeps serving.

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/file_stamp.h"

namespace payorch::service {

// The RPCs a policy may name.
// Refund, Capture, Void and CancelRecurring move money or end a
// shopper's agreement: grant them like ChargeRecurring, to billing and
// support callers only; GetRefund reads like GetOrder.
inline constexpr const char* kPolicyMethods[] = {
    "CreateCheckout", "GetSessionStatus", "GetOrder", "ChargeRecurring",
    // Events: a watcher sees the orders' state as GetOrder does.
    "WatchOrder", "WatchMerchantEvents",
    // After the payment.
    "Refund", "GetRefund", "Capture", "Void", "CancelRecurring"};

class CallerPolicy {
 public:
  // Parses and validates a policy document. kInvalidArgument naming the
  // offending entry for unknown keys, unknown methods, empty or duplicate
  // identities, empty lists.
  static absl::StatusOr<CallerPolicy> Parse(absl::string_view json);

  // True when `identity` may call `method` for `merchant_id`.
  bool Allows(absl::string_view identity, absl::string_view method,
              absl::string_view merchant_id) const;
  // True when `identity` is listed (metrics label it by name; others are
  // "other", so labels stay bounded by the policy).
  bool Knows(absl::string_view identity) const;
  size_t size() const { return callers_.size(); }

 private:
  struct Grant {
    bool any_merchant = false;
    absl::flat_hash_set<std::string> merchants;
    bool any_method = false;
    absl::flat_hash_set<std::string> methods;
  };
  absl::flat_hash_map<std::string, Grant> callers_;
};

// The policy in force, reloaded from a file. Thread-safe.
class CallerPolicyWatcher {
 public:
  // Loads `path`; an error when the file is missing or invalid.
  static absl::StatusOr<std::unique_ptr<CallerPolicyWatcher>> Load(
      std::string path);

  // The current policy (never null); callers keep it for one call.
  std::shared_ptr<const CallerPolicy> Current() const;

  // Re-reads the file if it changed since the last look. OK when nothing
  // changed or the new policy is now in force; otherwise the error, and the
  // old policy stays.
  absl::Status ReloadIfChanged();

 private:
  explicit CallerPolicyWatcher(std::string path) : path_(std::move(path)) {}
  const std::string path_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const CallerPolicy> current_ ABSL_GUARDED_BY(mu_);
  FileStamp stamp_ ABSL_GUARDED_BY(mu_);
};

}  // namespace payorch::service

#endif  // PAYORCH_SERVICE_CALLER_POLICY_H_
