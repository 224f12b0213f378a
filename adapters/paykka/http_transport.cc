#include "adapters/paykka/http_transport.h"

#include <string>

#include "absl/strings/cord.h"

namespace payorch::paykka {
namespace {
constexpr absl::string_view kSendStateUrl = "payorch/paykka/send_state";
}  // namespace

absl::Status TransportError(absl::StatusCode code, SendState state,
                            absl::string_view message) {
  absl::Status status(code, message);
  status.SetPayload(
      kSendStateUrl,
      absl::Cord(state == SendState::kNotSent ? "NOT_SENT" : "MAYBE_SENT"));
  return status;
}

absl::Status MarkNotSent(absl::Status status) {
  status.SetPayload(kSendStateUrl, absl::Cord("NOT_SENT"));
  return status;
}

SendState SendStateOf(const absl::Status& status) {
  auto payload = status.GetPayload(kSendStateUrl);
  if (payload && std::string(*payload) == "NOT_SENT") {
    return SendState::kNotSent;
  }
  return SendState::kMaybeSent;
}

}  // namespace payorch::paykka
