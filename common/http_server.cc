#include "common/http_server.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <future>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace payorch {
namespace {

const char* MethodName(evhttp_cmd_type cmd) {
  switch (cmd) {
    case EVHTTP_REQ_GET:
      return "GET";
    case EVHTTP_REQ_POST:
      return "POST";
    case EVHTTP_REQ_HEAD:
      return "HEAD";
    case EVHTTP_REQ_PUT:
      return "PUT";
    case EVHTTP_REQ_DELETE:
      return "DELETE";
    default:
      return "OTHER";
  }
}

}  // namespace

absl::StatusOr<std::pair<std::string, int>> ParseHostPort(
    const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected host:port, got '", text, "'"));
  }
  std::string host = text.substr(0, colon);
  const bool bracketed =
      host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (bracketed) host = host.substr(1, host.size() - 2);
  // An IPv6 address must be bracketed: in "fe80::1:80" the port is ambiguous.
  const bool bad_host = host.empty() ||
                        host.find_first_of("[]") != std::string::npos ||
                        (!bracketed && host.find(':') != std::string::npos);
  int port = 0;
  if (!absl::SimpleAtoi(text.substr(colon + 1), &port) || port < 0 ||
      port > 65535 || bad_host) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected host:port, got '", text, "'"));
  }
  return std::make_pair(host, port);
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    EventLoop* loop, const std::string& host, int port,
    absl::flat_hash_map<std::string, HttpHandler> routes,
    HttpServerLimits limits) {
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->loop_ = loop;
  server->routes_ = std::move(routes);
  server->max_headers_ = limits.max_headers;
  std::promise<absl::Status> started;
  HttpServer* self = server.get();
  loop->Post([self, host, port, limits, &started] {
    self->http_ = evhttp_new(self->loop_->base());
    if (self->http_ == nullptr) {
      started.set_value(absl::InternalError("evhttp_new failed"));
      return;
    }
    evhttp_set_max_body_size(self->http_, limits.max_body_bytes);
    evhttp_set_max_headers_size(self->http_, limits.max_header_bytes);
    timeval timeout = absl::ToTimeval(limits.timeout);
    evhttp_set_timeout_tv(self->http_, &timeout);
    evhttp_set_allowed_methods(
        self->http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(self->http_, &HttpServer::OnRequest, self);
    evhttp_bound_socket* sock = evhttp_bind_socket_with_handle(
        self->http_, host.c_str(), static_cast<uint16_t>(port));
    if (sock == nullptr) {
      started.set_value(absl::UnavailableError(
          absl::StrCat("cannot listen on ", host, ":", port)));
      return;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    getsockname(evhttp_bound_socket_get_fd(sock),
                reinterpret_cast<sockaddr*>(&ss), &len);
    self->port_ = ss.ss_family == AF_INET6
                      ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                      : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    started.set_value(absl::OkStatus());
  });
  absl::Status status = started.get_future().get();
  if (!status.ok()) return status;
  return server;
}

HttpServer::~HttpServer() {
  if (http_ == nullptr) return;
  std::promise<void> done;
  loop_->Post([this, &done] {
    evhttp_free(http_);
    done.set_value();
  });
  done.get_future().wait();
}

void HttpServer::OnRequest(evhttp_request* req, void* arg) {
  auto* self = static_cast<HttpServer*>(arg);
  HttpServerRequest request;
  request.method = MethodName(evhttp_request_get_command(req));
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
  request.path = path != nullptr && *path != '\0' ? path : "/";
  evkeyvalq* headers = evhttp_request_get_input_headers(req);
  size_t count = 0;
  for (evkeyval* h = headers->tqh_first; h != nullptr; h = h->next.tqe_next) {
    if (++count > self->max_headers_) {
      evhttp_send_error(req, 431, "Request Header Fields Too Large");
      return;
    }
    request.headers[absl::AsciiStrToLower(h->key)] = h->value;
  }
  evbuffer* in = evhttp_request_get_input_buffer(req);
  size_t n = evbuffer_get_length(in);
  request.body.resize(n);
  if (n > 0) evbuffer_copyout(in, request.body.data(), n);

  EventLoop* loop = self->loop_;
  HttpResponder respond = [loop, req](HttpServerResponse response) {
    auto send = [req, response = std::move(response)] {
      evkeyvalq* out = evhttp_request_get_output_headers(req);
      evhttp_add_header(out, "Content-Type", response.content_type.c_str());
      for (const auto& [k, v] : response.headers)
        evhttp_add_header(out, k.c_str(), v.c_str());
      evbuffer* body = evbuffer_new();
      evbuffer_add(body, response.body.data(), response.body.size());
      evhttp_send_reply(req, response.status, nullptr, body);
      evbuffer_free(body);
    };
    if (loop->InLoopThread()) {
      send();
    } else {
      loop->Post(std::move(send));
    }
  };
  auto it = self->routes_.find(request.path);
  if (it == self->routes_.end()) {
    std::move(respond)(HttpServerResponse{
        404, "text/plain; charset=utf-8", "not found\n", {}});
    return;
  }
  it->second(std::move(request), std::move(respond));
}

}  // namespace payorch
