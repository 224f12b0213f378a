#ifndef PAYORCH_ADAPTERS_PAYKKA_HTTP_TRANSPORT_H_
#define PAYORCH_ADAPTERS_PAYKKA_HTTP_TRANSPORT_H_

// The HTTP seam under the PayKKa client: one request in, one response (or a
// classified failure) out. CurlMultiTransport (curl_transport.h) is the real
// implementation; tests use fakes.

#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace payorch::paykka {

struct HttpRequest {
  std::string method = "POST";
  std::string url;  // absolute, e.g. https://openapi.paykka.com/v3/payment/acq
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // A create or charge: written to the wire at most once. The transport
  // never re-sends it by itself (e.g. after a reused keep-alive connection
  // died), and any failure after a byte of it was written is kMaybeSent.
  bool at_most_once = false;
};

struct HttpResponse {
  int status = 0;
  // Header names lower-cased; a repeated header keeps its last value.
  absl::flat_hash_map<std::string, std::string> headers;
  std::string body;

  // The header's value, or "" (name must be lower case).
  std::string Header(absl::string_view lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// Whether a failed request may have reached the server. This decides whether
// a mutating call's outcome is unknown (and must be checked by querying) or
// whether the request can simply be sent again.
enum class SendState {
  // Certainly not processed: DNS failure, connection refused, TLS handshake
  // failure, deadline already passed, or no byte of the request written.
  kNotSent,
  // The request (or part of it) went out; the server may have acted on it
  // (timeout, reset or EOF while waiting for the response).
  kMaybeSent,
};

// A transport failure: `code` is kDeadlineExceeded for timeouts and
// kUnavailable otherwise; the SendState rides in a status payload.
absl::Status TransportError(absl::StatusCode code, SendState state,
                            absl::string_view message);
// `status` (e.g. a payorch error with its Reason) marked as kNotSent: the
// call failed before any byte was handed to the transport (e.g. signing).
absl::Status MarkNotSent(absl::Status status);
// The SendState of a TransportError(). Statuses without one are kMaybeSent
// (the safe assumption).
SendState SendStateOf(const absl::Status& status);

using HttpCallback = absl::AnyInvocable<void(absl::StatusOr<HttpResponse>) &&>;

// Sends HTTP requests asynchronously. Implementations are thread-safe.
class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  // Sends `request`; gives up at `deadline`. Returns at once; `done` runs
  // exactly once, on the transport's I/O thread, with the response (any HTTP
  // status) or a TransportError(). Never blocks the caller.
  virtual void Send(HttpRequest request, absl::Time deadline,
                    HttpCallback done) = 0;
};

}  // namespace payorch::paykka

#endif  // PAYORCH_ADAPTERS_PAYKKA_HTTP_TRANSPORT_H_
