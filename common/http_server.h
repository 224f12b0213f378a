#ifndef PAYORCH_COMMON_HTTP_SERVER_H_
#define PAYORCH_COMMON_HTTP_SERVER_H_

// A small HTTP/1.1 listener (libevent evhttp) on an EventLoop, for payorchd's
// side port: Prometheus /metrics, /healthz, /readyz and PayKKa webhooks. It is
// not on the payment path. Handlers run on the loop thread and may answer
// later (the Responder can be moved and called from any thread).

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/event_loop.h"

struct evhttp;
struct evhttp_request;

namespace payorch {

struct HttpServerRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query string
  absl::flat_hash_map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

struct HttpServerResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Limits on what a client may make the listener hold (every side listener
// is reachable by someone who should not be trusted).
struct HttpServerLimits {
  size_t max_body_bytes = 1 << 20;  // larger bodies answer 413
  // The request line and all headers together; larger answer 400 and the
  // connection is closed as soon as the cap is passed (nothing more is
  // buffered).
  size_t max_header_bytes = 8 * 1024;
  size_t max_headers = 64;  // more answer 431
  // A connection that sends or accepts nothing for this long is closed
  // (a request left half-sent, an idle keep-alive connection).
  absl::Duration timeout = absl::Seconds(10);
};

// Sends the response; call exactly once, from any thread.
using HttpResponder = absl::AnyInvocable<void(HttpServerResponse) &&>;
using HttpHandler = absl::AnyInvocable<void(HttpServerRequest, HttpResponder)>;

class HttpServer {
 public:
  // Listens on `host:port` (port 0 picks one). Routes are exact paths; other
  // paths answer 404. `limits` bound sizes and idle time.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      EventLoop* loop, const std::string& host, int port,
      absl::flat_hash_map<std::string, HttpHandler> routes,
      HttpServerLimits limits = {});
  // Closes the listener (on the loop thread) and waits for that.
  ~HttpServer();

  int port() const { return port_; }

 private:
  HttpServer() = default;
  static void OnRequest(::evhttp_request* req, void* arg);

  EventLoop* loop_ = nullptr;
  evhttp* http_ = nullptr;
  int port_ = 0;
  size_t max_headers_ = 0;
  absl::flat_hash_map<std::string, HttpHandler> routes_;
};

// Parses "host:port" ("[::1]:80" too); kInvalidArgument if malformed.
absl::StatusOr<std::pair<std::string, int>> ParseHostPort(
    const std::string& text);

}  // namespace payorch

#endif  // PAYORCH_COMMON_HTTP_SERVER_H_
