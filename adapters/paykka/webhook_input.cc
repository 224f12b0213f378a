#include "adapters/paykka/webhook_input.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace payorch::paykka {
namespace {

// Reads `name` into `out`: absent or null leaves "", a bounded string is
// copied, anything else is refused.
absl::Status ReadField(const nlohmann::json& body, const char* name,
                       std::string* out) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": not a string"));
  }
  const std::string& value = it->get_ref<const std::string&>();
  if (value.size() > kMaxNotificationField) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": longer than ", kMaxNotificationField, " bytes"));
  }
  *out = value;
  return absl::OkStatus();
}

}  // namespace

int JsonNestingDepth(absl::string_view json, int limit) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > deepest) deepest = depth;
      if (deepest > limit) return limit + 1;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

absl::StatusOr<NotificationFields> ReadNotificationFields(
    absl::string_view body) {
  if (body.size() > kMaxNotificationBody) {
    return absl::InvalidArgumentError(
        absl::StrCat("body: larger than ", kMaxNotificationBody, " bytes"));
  }
  if (JsonNestingDepth(body, kMaxNotificationDepth) > kMaxNotificationDepth) {
    return absl::InvalidArgumentError(absl::StrCat(
        "body: nested deeper than ", kMaxNotificationDepth, " levels"));
  }
  nlohmann::json json =
      nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) {
    return absl::InvalidArgumentError("body: not a JSON object");
  }
  NotificationFields f;
  for (auto [name, out] :
       {std::pair{"merchant_id", &f.merchant_id},
        std::pair{"notify_type", &f.notify_type},
        std::pair{"order_id", &f.order_id}, std::pair{"trans_id", &f.trans_id},
        std::pair{"status", &f.status}}) {
    if (absl::Status s = ReadField(json, name, out); !s.ok()) return s;
  }
  if (f.notify_type.empty()) {
    if (absl::Status s = ReadField(json, "event_type", &f.notify_type);
        !s.ok()) {
      return s;
    }
  }
  return f;
}

absl::string_view NotifyTypeLabel(absl::string_view notify_type) {
  // docs/paykka.md 7: the documented notification types.
  for (absl::string_view known :
       {"PAYMENT.AUTHORIZATION", "PAYMENT.SUCCESS", "PAYMENT.FAILURE",
        "PAYMENT.CANCELED", "REFUND.SUCCESS", "REFUND.FAILURE", "DISPUTE"}) {
    if (notify_type == known) return known;
  }
  return "OTHER";
}

}  // namespace payorch::paykka
