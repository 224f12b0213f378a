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

// Sends the response; call exactly once, from any thread.
using HttpResponder = absl::AnyInvocable<void(HttpServerResponse) &&>;
using HttpHandler = absl::AnyInvocable<void(HttpServerRequest, HttpResponder)>;

class HttpServer {
 public:
  // Listens on `host:port` (port 0 picks one). Routes are exact paths; other
  // paths answer 404. Bodies over `max_body_bytes` answer 413.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      EventLoop* loop, const std::string& host, int port,
      absl::flat_hash_map<std::string, HttpHandler> routes,
      size_t max_body_bytes = 1 << 20);
  // Closes the listener (on the loop thread) and waits for that.
  ~HttpServer();

  int port() const { return port_; }

 private:
  HttpServer() = default;
  static void OnRequest(::evhttp_request* req, void* arg);

  EventLoop* loop_ = nullptr;
  evhttp* http_ = nullptr;
  int port_ = 0;
  absl::flat_hash_map<std::string, HttpHandler> routes_;
};

// Parses "host:port" ("[::1]:80" too); kInvalidArgument if malformed.
absl::StatusOr<std::pair<std::string, int>> ParseHostPort(
    const std::string& text);

}  // namespace payorch

#endif  // PAYORCH_COMMON_HTTP_SERVER_H_
