#ifndef PAYORCH_ADAPTERS_PAYKKA_WEBHOOK_INPUT_H_
#define PAYORCH_ADAPTERS_PAYKKA_WEBHOOK_INPUT_H_

// Hostile-input reading of a PayKKa notification body: the webhook port is
// reachable from the internet, so nothing in the body is trusted before the
// signature is checked, and even then only bounded strings are kept.
//
// - the body is at most kMaxNotificationBody bytes;
// - JSON nesting deeper than kMaxNotificationDepth is refused before the
//   body is parsed (a deep document would exhaust the stack);
// - the fields payorch reads must be JSON strings (or absent) of at most
//   kMaxNotificationField bytes: any other type or length is refused;
// - NotifyTypeLabel() maps notify_type onto a closed set, the only values
//   that may become a metric label.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace payorch::paykka {

inline constexpr size_t kMaxNotificationBody = 64 * 1024;
inline constexpr int kMaxNotificationDepth = 16;
inline constexpr size_t kMaxNotificationField = 128;

// The fields payorch reads from a notification ("" when absent).
struct NotificationFields {
  std::string merchant_id;
  std::string notify_type;  // notify_type, or event_type when absent
  std::string order_id;
  std::string trans_id;
  std::string status;
};

// kInvalidArgument naming the offending field (never quoting the body) when
// the body is too large, too deep, not a JSON object, or a read field is not
// a bounded string.
absl::StatusOr<NotificationFields> ReadNotificationFields(
    absl::string_view body);

// The deepest nesting of arrays/objects in `json` (strings skipped), stopping
// early once `limit` is exceeded (then returns limit + 1).
int JsonNestingDepth(absl::string_view json, int limit);

// notify_type as a metric label: one of PayKKa's documented types, or
// "OTHER".
absl::string_view NotifyTypeLabel(absl::string_view notify_type);

// PayKKa's signature headers on a notification (lower-case names).
inline constexpr char kNotificationAppIdHeader[] = "x-paykka-appid";
inline constexpr char kNotificationNonceHeader[] = "x-paykka-nonce";

}  // namespace payorch::paykka

#endif  // PAYORCH_ADAPTERS_PAYKKA_WEBHOOK_INPUT_H_
