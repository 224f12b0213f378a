#include "sandbox/http_frontend.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "adapters/paykka/signing.h"

namespace payorch::sandbox {

// One request the server has not answered yet.
struct HttpFrontend::Pending {
  HttpFrontend* frontend = nullptr;
  uint64_t id = 0;
  evhttp_request* req = nullptr;
  evhttp_connection* conn = nullptr;
  bool in_flight = false;  // counted in in_flight_
};

namespace {

// A listening, non-blocking IPv4 socket; `*port` is updated with the port
// bound.
absl::StatusOr<int> ListenSocket(const std::string& host, int* port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(*port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        "listen address must be an IPv4 address: " + host);
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  // Accepted sockets inherit it: an HTTPS answer goes out as several TLS
  // records (several writes), and Nagle would hold the last one for the
  // client's delayed ACK (~40 ms per request).
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  socklen_t len = sizeof(addr);
  if (fd < 0 ||
      bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, 65535) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    absl::Status status = absl::InternalError(absl::StrCat(
        "cannot listen on ", host, ":", *port, ": ", std::strerror(errno)));
    if (fd >= 0) close(fd);
    return status;
  }
  evutil_make_socket_nonblocking(fd);
  evutil_make_socket_closeonexec(fd);
  *port = ntohs(addr.sin_port);
  return fd;
}

Method MethodOf(evhttp_cmd_type cmd) {
  switch (cmd) {
    case EVHTTP_REQ_GET:
      return Method::kGet;
    case EVHTTP_REQ_HEAD:
      return Method::kHead;
    case EVHTTP_REQ_POST:
      return Method::kPost;
    case EVHTTP_REQ_PUT:
      return Method::kPut;
    case EVHTTP_REQ_DELETE:
      return Method::kDelete;
    default:
      return Method::kOther;
  }
}

int64_t NowMillis() { return absl::ToUnixMillis(absl::Now()); }

}  // namespace

const std::string* Request::Header(const char* name) const {
  for (const auto& [k, v] : headers) {
    if (absl::EqualsIgnoreCase(k, name)) return &v;
  }
  return nullptr;
}

HttpFrontend::HttpFrontend(EventLoop* loop, const ServerOptions& options,
                           RsaPrivateKey platform_key)
    : loop_(loop),
      options_(options),
      platform_key_(std::move(platform_key)),
      pool_(
          std::make_unique<WorkerPool>(std::max(1, options.signing_threads))) {}

HttpFrontend::~HttpFrontend() = default;

absl::Status HttpFrontend::LoadTls() {
  if (options_.tls_listen_port < 0) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<TlsServerContext>> tls =
      TlsServerContext::Load(options_.tls_cert_file, options_.tls_key_file);
  if (!tls.ok()) return tls.status();
  tls_ = *std::move(tls);
  return absl::OkStatus();
}

absl::Status HttpFrontend::Listen(Handler handler) {
  handler_ = std::move(handler);
  held_poll_ =
      event_new(loop_->base(), -1, EV_PERSIST, &HttpFrontend::OnHeldPoll, this);
  timeval every{0, 200 * 1000};
  evtimer_add(held_poll_, &every);
  port_ = options_.listen_port;
  http_ = NewHttp(false);
  if (absl::Status s = Accept(http_, options_.listen_host, &port_); !s.ok()) {
    return s;
  }
  if (tls_ == nullptr) return absl::OkStatus();
  tls_port_ = options_.tls_listen_port;
  https_ = NewHttp(true);
  return Accept(https_, options_.tls_listen_host, &tls_port_);
}

absl::Status HttpFrontend::Accept(evhttp* http, const std::string& host,
                                  int* port) {
  absl::StatusOr<int> fd = ListenSocket(host, port);
  if (!fd.ok()) return fd.status();
  if (evhttp_accept_socket_with_handle(http, *fd) == nullptr) {
    close(*fd);
    return absl::InternalError("evhttp_accept_socket failed");
  }
  return absl::OkStatus();
}

evhttp* HttpFrontend::NewHttp(bool tls) {
  evhttp* http = evhttp_new(loop_->base());
  evhttp_set_allowed_methods(
      http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
  // Bodies over max_body_bytes get the API's 413 envelope; evhttp itself
  // only cuts off absurd ones.
  evhttp_set_max_body_size(http,
                           static_cast<ev_ssize_t>(std::max<size_t>(
                               options_.max_body_bytes * 4, size_t{16} << 20)));
  // Held requests (latency, timeout after commit) must outlive evhttp's
  // default 50 s connection timeout.
  evhttp_set_timeout(
      http, static_cast<int>(absl::ToInt64Seconds(options_.max_hold)) + 60);
  evhttp_set_gencb(http, &HttpFrontend::OnRequest, this);
  evhttp_set_bevcb(
      http,
      tls ? &HttpFrontend::OnNewTlsConnection : &HttpFrontend::OnNewConnection,
      this);
  return http;
}

void HttpFrontend::Shutdown() {
  shutting_down_ = true;
  for (auto& [id, p] : pending_) {
    if (p->conn != nullptr) {
      evhttp_connection_set_closecb(p->conn, nullptr, nullptr);
    }
  }
  pending_.clear();
  if (held_poll_ != nullptr) event_free(held_poll_);
  held_poll_ = nullptr;
  for (evhttp** http : {&http_, &https_}) {
    if (*http != nullptr) evhttp_free(*http);
    *http = nullptr;
  }
}

bufferevent* HttpFrontend::OnNewConnection(event_base* base, void* arg) {
  // What evhttp creates by itself; evhttp sets the socket afterwards.
  bufferevent* bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  if (bev != nullptr) {
    static_cast<HttpFrontend*>(arg)->fresh_connections_[bev] = false;
  }
  return bev;
}

bufferevent* HttpFrontend::OnNewTlsConnection(event_base* base, void* arg) {
  auto* self = static_cast<HttpFrontend*>(arg);
  bufferevent* bev = self->tls_->NewAcceptingBufferevent(base);
  if (bev != nullptr) self->fresh_connections_[bev] = true;
  return bev;
}

// Whether `req` came on a connection that carried a request before; counts
// the connection the first time.
bool HttpFrontend::CountConnection(evhttp_request* req) {
  evhttp_connection* conn = evhttp_request_get_connection(req);
  bufferevent* bev =
      conn != nullptr ? evhttp_connection_get_bufferevent(conn) : nullptr;
  auto it = fresh_connections_.find(bev);
  if (it == fresh_connections_.end()) return true;
  ++connections_;
  if (it->second) {
    ++tls_connections_;
    if (TlsServerContext::SessionReused(bev)) ++tls_resumed_connections_;
  }
  fresh_connections_.erase(it);
  return false;
}

void HttpFrontend::OnRequest(evhttp_request* req, void* arg) {
  static_cast<HttpFrontend*>(arg)->Handle(req);
}

void HttpFrontend::Handle(evhttp_request* req) {
  Request r;
  r.reused = CountConnection(req);
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* raw_path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
  r.path = raw_path != nullptr ? raw_path : "/";
  r.target = r.path;
  if (const char* q = uri != nullptr ? evhttp_uri_get_query(uri) : nullptr) {
    r.target = absl::StrCat(r.path, "?", q);
  }
  r.method = MethodOf(evhttp_request_get_command(req));
  evbuffer* in = evhttp_request_get_input_buffer(req);
  r.body.resize(evbuffer_get_length(in));
  if (!r.body.empty()) evbuffer_copyout(in, r.body.data(), r.body.size());
  evkeyvalq* h = evhttp_request_get_input_headers(req);
  for (evkeyval* kv = h->tqh_first; kv != nullptr; kv = kv->next.tqe_next) {
    r.headers.emplace_back(kv->key, kv->value);
  }
  auto p = std::make_unique<Pending>();
  p->frontend = this;
  p->id = r.id = next_id_++;
  p->req = req;
  p->conn = evhttp_request_get_connection(req);
  if (p->conn != nullptr) {
    evhttp_connection_set_closecb(p->conn, &HttpFrontend::OnConnectionClosed,
                                  p.get());
  }
  pending_[p->id] = std::move(p);
  handler_(r);
}

void HttpFrontend::CountInFlight(uint64_t id) {
  Pending* p = Find(id);
  if (p == nullptr || p->in_flight) return;
  p->in_flight = true;
  ++in_flight_;
  max_in_flight_ = std::max(max_in_flight_, in_flight_);
}

HttpFrontend::Pending* HttpFrontend::Find(uint64_t id) const {
  auto it = pending_.find(id);
  return it == pending_.end() ? nullptr : it->second.get();
}

void HttpFrontend::OnConnectionClosed(evhttp_connection* conn, void* arg) {
  auto* p = static_cast<Pending*>(arg);
  evhttp_connection_set_closecb(conn, nullptr, nullptr);
  p->req = nullptr;
  p->conn = nullptr;
  p->frontend->Forget(p);
}

// Forgets the request without answering (its connection is gone or about to
// be).
void HttpFrontend::Forget(Pending* p) {
  if (p->conn != nullptr) {
    evhttp_connection_set_closecb(p->conn, nullptr, nullptr);
  }
  if (p->in_flight) --in_flight_;
  held_.erase(p->id);
  pending_.erase(p->id);
}

void HttpFrontend::Close(uint64_t id, bool rst) {
  Pending* p = Find(id);
  if (p == nullptr) return;
  evhttp_connection* conn = p->conn;
  Forget(p);
  if (conn == nullptr) return;
  bufferevent* bev = evhttp_connection_get_bufferevent(conn);
  if (bev != nullptr && rst) {
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd >= 0) {
      linger lg{1, 0};  // RST instead of FIN
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
  }
  evhttp_connection_free(conn);
}

void HttpFrontend::Hold(uint64_t id) {
  held_.insert(id);
  loop_->RunAfter(options_.max_hold, [this, id] {
    if (held_.count(id) != 0) Close(id, true);
  });
}

void HttpFrontend::OnHeldPoll(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<HttpFrontend*>(arg);
  std::vector<uint64_t> gone;
  for (uint64_t id : self->held_) {
    Pending* p = self->Find(id);
    bool closed = p == nullptr || p->conn == nullptr;
    if (!closed) {
      bufferevent* bev = evhttp_connection_get_bufferevent(p->conn);
      evutil_socket_t fd = bev != nullptr ? bufferevent_getfd(bev) : -1;
      char c;
      ssize_t n = fd >= 0 ? recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) : 0;
      closed = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
    }
    if (closed) gone.push_back(id);
  }
  for (uint64_t id : gone) {
    self->held_.erase(id);
    self->Close(id, true);
  }
}

void HttpFrontend::Reply(uint64_t id, int status, std::string body,
                         const char* content_type, bool bad_signature) {
  if (!options_.sign_responses) {
    SendNow(id, status, body, content_type, "", "", "");
    return;
  }
  std::string ts = absl::StrCat(NowMillis());
  std::string nonce = RandomHex(16);
  pool_->Submit([this, id, status, body = std::move(body),
                 type = std::string(content_type), ts = std::move(ts),
                 nonce = std::move(nonce), bad_signature,
                 key = platform_key_]() mutable {
    std::string to_sign = paykka::ResponseStringToSign(
        options_.sign_body_only
            ? paykka::ResponseSignRecipe::kBody
            : paykka::ResponseSignRecipe::kTimestampNonceBody,
        ts, nonce, bad_signature ? body + "\n" : body);
    absl::StatusOr<std::string> sign =
        paykka::PaykkaSignatureHeader(key, to_sign);
    loop_->Post([this, id, status, body = std::move(body),
                 type = std::move(type), ts = std::move(ts),
                 nonce = std::move(nonce),
                 sign = sign.ok() ? *sign : std::string()] {
      SendNow(id, status, body, type, ts, nonce, sign);
    });
  });
}

void HttpFrontend::ReplyUnsigned(uint64_t id, int status,
                                 const std::string& body,
                                 const char* content_type, const char* reason) {
  SendNow(id, status, body, content_type, "", "", "", reason);
}

void HttpFrontend::ReplyRedirect(uint64_t id, const std::string& location,
                                 const std::string& html) {
  Pending* p = Find(id);
  if (p == nullptr || p->req == nullptr || shutting_down_) return;
  // evhttp refuses header values with CR/LF; the URL was validated anyway.
  evhttp_add_header(evhttp_request_get_output_headers(p->req), "Location",
                    location.c_str());
  SendNow(id, 303, html, "text/html; charset=utf-8", "", "", "", "See Other");
}

void HttpFrontend::SendNow(uint64_t id, int status, const std::string& body,
                           const std::string& content_type,
                           const std::string& ts, const std::string& nonce,
                           const std::string& sign, const char* reason) {
  Pending* p = Find(id);
  if (p == nullptr || p->req == nullptr || shutting_down_) return;
  evhttp_request* req = p->req;
  evkeyvalq* out = evhttp_request_get_output_headers(req);
  evhttp_add_header(out, "Content-Type", content_type.c_str());
  if (!ts.empty()) {
    evhttp_add_header(out, "x-paykka-timestamp", ts.c_str());
    evhttp_add_header(out, "x-paykka-nonce", nonce.c_str());
    evhttp_add_header(out, "x-paykka-sign", sign.c_str());
  }
  evbuffer* buf = evbuffer_new();
  evbuffer_add(buf, body.data(), body.size());
  Forget(p);  // clears the close callback before evhttp may free things
  evhttp_send_reply(req, status, reason, buf);
  evbuffer_free(buf);
}

Json HttpFrontend::Counters() const {
  return Json{{"in_flight", in_flight_},
              {"max_in_flight", max_in_flight_},
              {"connections", connections_},
              {"tls_connections", tls_connections_},
              {"tls_resumed_connections", tls_resumed_connections_}};
}

void HttpFrontend::ResetCounters() {
  max_in_flight_ = in_flight_;
  connections_ = tls_connections_ = tls_resumed_connections_ = 0;
}

}  // namespace payorch::sandbox
