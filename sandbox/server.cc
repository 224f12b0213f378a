#include "sandbox/server.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <deque>
#include <map>
#include <set>
#include <unordered_map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "common/event_loop.h"
#include "sandbox/tls.h"

namespace payorch::sandbox {
namespace {

constexpr char kCreateSession[] = "/v3/payment/acq/session";
constexpr char kQuerySession[] = "/v3/payment/acq/session/query";
constexpr char kQueryTransaction[] = "/v3/payment/acq/query";
constexpr char kInitiateTransaction[] = "/v3/payment/acq";
constexpr char kCancelAgreement[] = "/v3/payment/acq/recurring/cancel";

bool IsApiEndpoint(const std::string& path) {
  return path == kCreateSession || path == kQuerySession ||
         path == kQueryTransaction || path == kInitiateTransaction ||
         path == kCancelAgreement;
}

Json Envelope(const char* code, const std::string& msg) {
  return Json{{"ret_code", code}, {"ret_msg", msg}};
}

std::string Dump(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// Decodes application/x-www-form-urlencoded into key -> value.
std::map<std::string, std::string> ParseForm(const std::string& body) {
  std::map<std::string, std::string> out;
  for (absl::string_view part : absl::StrSplit(body, '&', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, '=');
    for (std::string* s : {&kv.first, &kv.second}) {
      std::replace(s->begin(), s->end(), '+', ' ');
      absl::StatusOr<std::string> d = PercentDecode(*s);
      if (d.ok()) *s = *d;
    }
    out[kv.first] = kv.second;
  }
  return out;
}

int64_t NowMillis() { return absl::ToUnixMillis(absl::Now()); }

}  // namespace

// --- merchants config ---

absl::StatusOr<std::vector<Merchant>> ParseMerchantsConfig(
    const std::string& text, const std::string& base_dir) {
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("config is not a JSON object");
  }
  auto it = j.find("merchants");
  if (it == j.end() || !it->is_array()) {
    return absl::InvalidArgumentError("config needs a \"merchants\" array");
  }
  std::vector<Merchant> out;
  for (const Json& m : *it) {
    auto str = [&m](const char* k) -> std::string {
      auto f = m.find(k);
      return f != m.end() && f->is_string() ? f->get<std::string>() : "";
    };
    if (!m.is_object() || str("merchant_id").empty() || str("app_id").empty()) {
      return absl::InvalidArgumentError(
          "each merchant needs merchant_id and app_id");
    }
    std::string key_text = str("public_key");
    if (key_text.empty()) {
      std::string file = str("public_key_file");
      if (file.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("merchant ", str("merchant_id"),
                         " needs public_key or public_key_file"));
      }
      if (file[0] != '/' && !base_dir.empty()) file = base_dir + "/" + file;
      absl::StatusOr<std::string> read = ReadFile(file);
      if (!read.ok()) return read.status();
      key_text = *read;
    }
    absl::StatusOr<RsaPublicKey> key = RsaPublicKey::Parse(key_text);
    if (!key.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "merchant ", str("merchant_id"), ": ", key.status().message()));
    }
    bool pci = false;
    if (auto p = m.find("pci"); p != m.end() && p->is_boolean()) {
      pci = p->get<bool>();
    }
    out.push_back(Merchant{str("merchant_id"), str("app_id"), str("client_key"),
                           *key, pci});
  }
  return out;
}

// --- server ---

class Server::Impl {
 public:
  Impl(ServerOptions options, StoreOptions store_options,
       std::vector<Merchant> merchants, RsaPrivateKey platform_key,
       FaultConfig faults)
      : options_(std::move(options)),
        initial_duplicates_(store_options.duplicate_trans_id),
        store_(std::move(store_options), std::move(merchants)),
        platform_key_(std::move(platform_key)),
        initial_faults_(std::move(faults)) {}

  absl::Status Start();
  void Shutdown();
  int port() const { return port_; }
  int tls_port() const { return tls_port_; }

 private:
  // One request the server has not answered yet.
  struct Pending {
    Impl* impl = nullptr;
    uint64_t id = 0;
    evhttp_request* req = nullptr;
    evhttp_connection* conn = nullptr;
    bool api = false;  // counted in in_flight
    std::string path;
    std::string body;
    FaultDecision fault;
  };
  struct Delivery {
    int64_t id = 0;
    std::string url, notify_type, order_id, app_id, body;
    int attempts = 0;
    int last_http_status = 0;
    bool delivered = false;
    std::string last_error;
  };
  struct WebhookCall {
    Impl* impl;
    int64_t delivery_id;
    evhttp_connection* conn;
  };

  static void OnRequest(evhttp_request* req, void* arg);
  static bufferevent* OnNewConnection(event_base* base, void* arg);
  static bufferevent* OnNewTlsConnection(event_base* base, void* arg);
  absl::Status Listen();
  evhttp* NewHttp(bool tls);
  // Whether `req` came on a connection that carried a request before;
  // counts the connection the first time.
  bool CountConnection(evhttp_request* req);
  static void OnConnectionClosed(evhttp_connection* conn, void* arg);
  static void OnWebhookDone(evhttp_request* req, void* arg);

  void Handle(evhttp_request* req);
  Pending* NewPending(evhttp_request* req, bool api);
  Pending* Find(uint64_t id) {
    auto it = pending_.find(id);
    return it == pending_.end() ? nullptr : it->second.get();
  }
  // Forgets the request without answering (its connection is gone or
  // about to be).
  void Forget(Pending* p);
  // Signs (off the loop) and sends the reply, then forgets the request.
  void Reply(uint64_t id, int status, std::string body,
             const char* content_type = "application/json; charset=utf-8",
             bool bad_signature = false);
  void SendNow(uint64_t id, int status, const std::string& body,
               const std::string& content_type, const std::string& ts,
               const std::string& nonce, const std::string& sign,
               const char* reason = nullptr);
  void ReplyJson(uint64_t id, int status, const Json& j) {
    Reply(id, status, Dump(j));
  }
  // Closes the connection with no response: an RST, or a FIN.
  void ResetConnection(Pending* p) { CloseConnection(p, true); }
  void CloseConnection(Pending* p, bool rst);
  // An HTML error page as a proxy sends it: no envelope, unsigned.
  void ReplyProxyPage(uint64_t id, int status);
  // Replies to a request that reached PayKKa, applying the faults that
  // act after the operation.
  void ReplyCommitted(uint64_t id, const ApiResponse& r);

  void HandleApi(uint64_t id);
  ApiResponse Authenticate(const Pending& p, const Merchant** merchant);
  ApiResponse Dispatch(const Pending& p);
  void HandleControl(Pending* p, evhttp_cmd_type method);
  void HandleCheckout(Pending* p, evhttp_cmd_type method);
  Json CountersJson() const;
  Json TransIdJson(const std::string& trans_id) const;
  bool HandleDuplicatePolicy(Pending* p, evhttp_cmd_type method,
                             const Json& body);
  void ResetAll();

  void DispatchWebhooks();
  void AttemptDelivery(int64_t id);
  void DeliveryFinished(int64_t id, int status, const std::string& body);

  ServerOptions options_;
  DuplicatePolicy initial_duplicates_;
  Store store_;
  RsaPrivateKey platform_key_;
  FaultConfig initial_faults_;
  FaultInjector faults_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<TlsServerContext> tls_;
  evhttp* http_ = nullptr;
  evhttp* https_ = nullptr;
  int port_ = 0;
  int tls_port_ = -1;
  bool shutting_down_ = false;

  uint64_t next_pending_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Pending>> pending_;

  // Nonces seen per app id, with when they were first seen (real time).
  std::unordered_map<std::string, absl::Time> nonces_;
  std::deque<std::pair<absl::Time, std::string>> nonce_order_;

  std::map<std::string, int64_t> requests_by_endpoint_;
  std::map<std::string, int64_t> requests_by_trans_id_;
  // Create Session / Initiate Transaction requests per trans_id, on arrival.
  std::map<std::string, int64_t> create_requests_by_trans_id_;
  int64_t in_flight_ = 0;
  int64_t max_in_flight_ = 0;

  // Requests held by "timeout after commit", polled for client close.
  std::set<uint64_t> held_;
  event* held_poll_ = nullptr;
  static void OnHeldPoll(evutil_socket_t, short, void* arg);

  int64_t next_delivery_id_ = 1;
  std::map<int64_t, Delivery> deliveries_;

  // Buffer events of accepted connections that have not carried a request
  // yet (true: TLS): a request on any other connection is a keep-alive
  // reuse. Connections that carried a request, and how many of the TLS ones
  // resumed a session.
  std::map<bufferevent*, bool> fresh_connections_;
  int64_t connections_ = 0;
  int64_t tls_connections_ = 0;
  int64_t tls_resumed_connections_ = 0;
};

// A listening, non-blocking IPv4 socket; `*port` is updated with the port
// bound.
namespace {

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

}  // namespace

absl::Status Server::Impl::Start() {
  absl::StatusOr<std::unique_ptr<EventLoop>> loop =
      EventLoop::Start("sandbox-loop");
  if (!loop.ok()) return loop.status();
  loop_ = *std::move(loop);
  pool_ = std::make_unique<WorkerPool>(std::max(1, options_.signing_threads));
  faults_.Set(initial_faults_);
  if (options_.tls_listen_port >= 0) {
    absl::StatusOr<std::unique_ptr<TlsServerContext>> tls =
        TlsServerContext::Load(options_.tls_cert_file, options_.tls_key_file);
    if (!tls.ok()) return tls.status();
    tls_ = *std::move(tls);
  }
  absl::Status status;
  absl::Notification done;
  loop_->Post([this, &status, &done] {
    status = Listen();
    done.Notify();
  });
  done.WaitForNotification();
  return status;
}

absl::Status Server::Impl::Listen() {
  port_ = options_.listen_port;
  absl::StatusOr<int> fd = ListenSocket(options_.listen_host, &port_);
  if (!fd.ok()) return fd.status();
  store_.set_public_base_url(
      absl::StrCat("http://", options_.listen_host, ":", port_));
  http_ = NewHttp(false);
  held_poll_ =
      event_new(loop_->base(), -1, EV_PERSIST, &Impl::OnHeldPoll, this);
  timeval every{0, 200 * 1000};
  evtimer_add(held_poll_, &every);
  if (evhttp_accept_socket_with_handle(http_, *fd) == nullptr) {
    return absl::InternalError("evhttp_accept_socket failed");
  }
  if (tls_ == nullptr) return absl::OkStatus();
  tls_port_ = options_.tls_listen_port;
  absl::StatusOr<int> tls_fd =
      ListenSocket(options_.tls_listen_host, &tls_port_);
  if (!tls_fd.ok()) return tls_fd.status();
  https_ = NewHttp(true);
  if (evhttp_accept_socket_with_handle(https_, *tls_fd) == nullptr) {
    return absl::InternalError("evhttp_accept_socket failed (https)");
  }
  return absl::OkStatus();
}

evhttp* Server::Impl::NewHttp(bool tls) {
  evhttp* http = evhttp_new(loop_->base());
  evhttp_set_allowed_methods(
      http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
  // Bodies over max_body_bytes get our 413 envelope; evhttp itself only
  // cuts off absurd ones.
  evhttp_set_max_body_size(http,
                           static_cast<ev_ssize_t>(std::max<size_t>(
                               options_.max_body_bytes * 4, size_t{16} << 20)));
  // Held requests (latency, timeout after commit) must outlive evhttp's
  // default 50 s connection timeout.
  evhttp_set_timeout(
      http, static_cast<int>(absl::ToInt64Seconds(options_.max_hold)) + 60);
  evhttp_set_gencb(http, &Impl::OnRequest, this);
  evhttp_set_bevcb(
      http, tls ? &Impl::OnNewTlsConnection : &Impl::OnNewConnection, this);
  return http;
}

void Server::Impl::Shutdown() {
  if (loop_ == nullptr) return;
  pool_.reset();  // finishes signing jobs; their replies are posted
  absl::Notification done;
  loop_->Post([this, &done] {
    shutting_down_ = true;
    for (auto& [id, p] : pending_) {
      if (p->conn != nullptr) {
        evhttp_connection_set_closecb(p->conn, nullptr, nullptr);
      }
    }
    pending_.clear();
    if (held_poll_ != nullptr) event_free(held_poll_);
    held_poll_ = nullptr;
    if (http_ != nullptr) evhttp_free(http_);
    http_ = nullptr;
    if (https_ != nullptr) evhttp_free(https_);
    https_ = nullptr;
    done.Notify();
  });
  done.WaitForNotification();
  loop_.reset();
}

void Server::Impl::OnRequest(evhttp_request* req, void* arg) {
  static_cast<Impl*>(arg)->Handle(req);
}

bufferevent* Server::Impl::OnNewConnection(event_base* base, void* arg) {
  // What evhttp creates by itself; evhttp sets the socket afterwards.
  bufferevent* bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  if (bev != nullptr) static_cast<Impl*>(arg)->fresh_connections_[bev] = false;
  return bev;
}

bufferevent* Server::Impl::OnNewTlsConnection(event_base* base, void* arg) {
  auto* self = static_cast<Impl*>(arg);
  bufferevent* bev = self->tls_->NewAcceptingBufferevent(base);
  if (bev != nullptr) self->fresh_connections_[bev] = true;
  return bev;
}

bool Server::Impl::CountConnection(evhttp_request* req) {
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

void Server::Impl::OnHeldPoll(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Impl*>(arg);
  for (auto it = self->held_.begin(); it != self->held_.end();) {
    Pending* p = self->Find(*it);
    bool gone = p == nullptr || p->conn == nullptr;
    if (!gone) {
      bufferevent* bev = evhttp_connection_get_bufferevent(p->conn);
      evutil_socket_t fd = bev != nullptr ? bufferevent_getfd(bev) : -1;
      char c;
      ssize_t n = fd >= 0 ? recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) : 0;
      gone = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
      if (gone) self->ResetConnection(p);
    }
    it = gone ? self->held_.erase(it) : std::next(it);
  }
}

void Server::Impl::OnConnectionClosed(evhttp_connection* conn, void* arg) {
  auto* p = static_cast<Pending*>(arg);
  evhttp_connection_set_closecb(conn, nullptr, nullptr);
  p->req = nullptr;
  p->conn = nullptr;
  p->impl->Forget(p);
}

Server::Impl::Pending* Server::Impl::NewPending(evhttp_request* req, bool api) {
  auto p = std::make_unique<Pending>();
  p->impl = this;
  p->id = next_pending_id_++;
  p->req = req;
  p->conn = evhttp_request_get_connection(req);
  p->api = api;
  if (p->conn != nullptr) {
    evhttp_connection_set_closecb(p->conn, &Impl::OnConnectionClosed, p.get());
  }
  if (api) {
    ++in_flight_;
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
  }
  Pending* raw = p.get();
  pending_[raw->id] = std::move(p);
  return raw;
}

void Server::Impl::Forget(Pending* p) {
  if (p->conn != nullptr) {
    evhttp_connection_set_closecb(p->conn, nullptr, nullptr);
  }
  if (p->api) --in_flight_;
  pending_.erase(p->id);
}

void Server::Impl::CloseConnection(Pending* p, bool rst) {
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

void Server::Impl::Reply(uint64_t id, int status, std::string body,
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
    // A wrong signature is a real signature over different bytes.
    std::string to_sign = PaykkaResponseStringToSign(
        ts, nonce, bad_signature ? body + "\n" : body);
    absl::StatusOr<std::string> sign = PaykkaSignatureHeader(key, to_sign);
    loop_->Post([this, id, status, body = std::move(body),
                 type = std::move(type), ts = std::move(ts),
                 nonce = std::move(nonce),
                 sign = sign.ok() ? *sign : std::string()] {
      SendNow(id, status, body, type, ts, nonce, sign);
    });
  });
}

void Server::Impl::SendNow(uint64_t id, int status, const std::string& body,
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

void Server::Impl::Handle(evhttp_request* req) {
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* raw_path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
  std::string path = raw_path != nullptr ? raw_path : "/";
  evhttp_cmd_type method = evhttp_request_get_command(req);
  evbuffer* in = evhttp_request_get_input_buffer(req);
  size_t len = evbuffer_get_length(in);
  std::string body(len, '\0');
  if (len > 0) evbuffer_copyout(in, body.data(), len);
  const bool reused = CountConnection(req);

  if (absl::StartsWith(path, "/sandbox/")) {
    Pending* p = NewPending(req, false);
    p->path = path;
    p->body = std::move(body);
    HandleControl(p, method);
    DispatchWebhooks();
    return;
  }
  if (absl::StartsWith(path, "/checkout/")) {
    Pending* p = NewPending(req, false);
    p->path = path;
    p->body = std::move(body);
    HandleCheckout(p, method);
    DispatchWebhooks();
    return;
  }
  if (!IsApiEndpoint(path)) {
    Pending* p = NewPending(req, false);
    ReplyJson(p->id, 404, Envelope("010000", "unknown path: " + path));
    return;
  }

  ++requests_by_endpoint_[path];
  Pending* p = NewPending(req, true);
  p->path = path;
  if (const char* q = uri != nullptr ? evhttp_uri_get_query(uri) : nullptr) {
    p->path = absl::StrCat(path, "?", q);  // signed as sent
  }
  if (method != EVHTTP_REQ_POST) {
    ReplyJson(p->id, 405, Envelope("010000", "method not allowed: use POST"));
    return;
  }
  const char* ctype =
      evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
  std::string ct = absl::AsciiStrToLower(ctype != nullptr ? ctype : "");
  if (ct != "application/json" && !absl::StartsWith(ct, "application/json;")) {
    ReplyJson(p->id, 415,
              Envelope("010000", "Content-Type must be application/json"));
    return;
  }
  if (body.size() > options_.max_body_bytes) {
    ReplyJson(
        p->id, 413,
        Envelope("010000", absl::StrCat("request body exceeds ",
                                        options_.max_body_bytes, " bytes")));
    return;
  }
  p->body = std::move(body);
  Json parsed = Json::parse(p->body, nullptr, false);
  if (parsed.is_object()) {
    auto t = parsed.find("trans_id");
    if (t != parsed.end() && t->is_string() &&
        !t->get_ref<const std::string&>().empty()) {
      ++requests_by_trans_id_[t->get<std::string>()];
      if (path == kCreateSession || path == kInitiateTransaction) {
        ++create_requests_by_trans_id_[t->get<std::string>()];
      }
    }
  }
  p->fault = faults_.Decide(path, reused);
  if (p->fault.latency > absl::ZeroDuration()) {
    uint64_t id = p->id;
    loop_->RunAfter(p->fault.latency, [this, id] { HandleApi(id); });
  } else {
    HandleApi(p->id);
  }
}

void Server::Impl::HandleApi(uint64_t id) {
  Pending* p = Find(id);
  if (p == nullptr || shutting_down_) return;  // client went away
  const FaultDecision& f = p->fault;
  if (f.reset || f.close_before_commit) {
    CloseConnection(p, f.reset);
    return;
  }
  if (f.http_status != 0) {
    ReplyJson(id, f.http_status,
              f.http_status == 429
                  ? Envelope("999429", "Request rate limit exceeded")
              : f.http_status >= 500 ? Envelope("999999", "system exception")
                                     : Envelope("010000", "injected fault"));
    return;
  }
  if (f.proxy_status != 0 && !f.proxy_after_commit) {
    ReplyProxyPage(id, f.proxy_status);
    return;
  }
  ApiResponse r = Dispatch(*p);
  DispatchWebhooks();
  ReplyCommitted(id, r);
}

void Server::Impl::ReplyCommitted(uint64_t id, const ApiResponse& r) {
  Pending* p = Find(id);
  if (p == nullptr) return;
  const FaultDecision& f = p->fault;
  if (f.close_after_commit) {
    CloseConnection(p, false);
    return;
  }
  if (f.proxy_status != 0) {
    ReplyProxyPage(id, f.proxy_status);
    return;
  }
  if (f.timeout_after_commit) {
    // Committed; the answer never comes. Close after max_hold, or forget it
    // as soon as the client hangs up (evhttp does not notice that by itself
    // while a request is unanswered).
    held_.insert(id);
    loop_->RunAfter(options_.max_hold, [this, id] {
      held_.erase(id);
      if (Pending* held = Find(id)) ResetConnection(held);
    });
    return;
  }
  std::string body = Dump(r.body);
  if (f.malformed_json) {
    Reply(id, 200, body.substr(0, body.size() / 2));
    return;
  }
  Reply(id, r.http_status, std::move(body), "application/json; charset=utf-8",
        f.bad_signature);
}

void Server::Impl::ReplyProxyPage(uint64_t id, int status) {
  // What nginx-style proxies and load balancers send.
  static const std::map<int, const char*> kReasons = {
      {404, "Not Found"},
      {408, "Request Timeout"},
      {409, "Conflict"},
      {425, "Too Early"},
      {429, "Too Many Requests"},
      {499, "Client Closed Request"},
      {500, "Internal Server Error"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {504, "Gateway Timeout"}};
  auto it = kReasons.find(status);
  const char* reason = it != kReasons.end() ? it->second : "Error";
  std::string title = absl::StrCat(status, " ", reason);
  SendNow(id, status,
          absl::StrCat("<html>\r\n<head><title>", title,
                       "</title></head>\r\n<body>\r\n<center><h1>", title,
                       "</h1></center>\r\n<hr><center>nginx</center>\r\n"
                       "</body>\r\n</html>\r\n"),
          "text/html", "", "", "", reason);
}

ApiResponse Server::Impl::Authenticate(const Pending& p,
                                       const Merchant** merchant) {
  evkeyvalq* h = evhttp_request_get_input_headers(p.req);
  const char* names[] = {"x-paykka-appid", "x-paykka-timestamp",
                         "x-paykka-nonce", "x-paykka-sign",
                         "x-paykka-sign-alg"};
  std::string values[5];
  for (int i = 0; i < 5; ++i) {
    const char* v = evhttp_find_header(h, names[i]);
    if (v == nullptr || *v == '\0') {
      return {401, Envelope("206002", absl::StrCat("signature not found: "
                                                   "missing header ",
                                                   names[i]))};
    }
    values[i] = v;
  }
  const std::string& app_id = values[0];
  const std::string& ts = values[1];
  const std::string& nonce = values[2];
  if (values[4] != "SHA256_WITH_RSA") {
    return {401, Envelope("206003",
                          "signature error: x-paykka-sign-alg must "
                          "be SHA256_WITH_RSA")};
  }
  *merchant = store_.FindMerchantByAppId(app_id);
  if (*merchant == nullptr) {
    return {401, Envelope("206005",
                          "merchant does not exist: unknown "
                          "x-paykka-appid")};
  }
  int64_t ts_ms = 0;
  if (!absl::SimpleAtoi(ts, &ts_ms) ||
      std::llabs(NowMillis() - ts_ms) > 5 * 60 * 1000) {
    return {401, Envelope("206004",
                          "signature expired: x-paykka-timestamp "
                          "is not within 5 minutes")};
  }
  std::string to_sign =
      PaykkaRequestStringToSign("POST", p.path, ts, nonce, p.body);
  if (!VerifyPaykkaSignatureHeader((*merchant)->public_key, to_sign, values[3])
           .ok()) {
    return {401, Envelope("206003", "signature error")};
  }
  // Replay protection: nonces are kept 10 minutes (twice the window).
  absl::Time now = absl::Now();
  while (!nonce_order_.empty() &&
         now - nonce_order_.front().first > absl::Minutes(10)) {
    nonces_.erase(nonce_order_.front().second);
    nonce_order_.pop_front();
  }
  std::string key = absl::StrCat(app_id, "\n", nonce);
  if (!nonces_.emplace(key, now).second) {
    return {401, Envelope("206003",
                          "signature error: x-paykka-nonce was "
                          "already used")};
  }
  nonce_order_.emplace_back(now, std::move(key));
  return {200, Json()};
}

ApiResponse Server::Impl::Dispatch(const Pending& p) {
  const Merchant* merchant = nullptr;
  ApiResponse auth = Authenticate(p, &merchant);
  if (auth.http_status != 200) return auth;
  Json req = Json::parse(p.body, nullptr, false);
  if (req.is_discarded() || !req.is_object()) {
    return {400, Envelope("010000",
                          "invalid parameter: body must be a JSON object")};
  }
  auto m = req.find("merchant_id");
  if (m == req.end() || !m->is_string() ||
      m->get_ref<const std::string&>().empty()) {
    return {400, Envelope("010000",
                          "invalid parameter: merchant_id is "
                          "required")};
  }
  if (m->get<std::string>() != merchant->merchant_id) {
    return {401, Envelope("206005",
                          "merchant does not exist for this "
                          "x-paykka-appid")};
  }
  std::string path(absl::StripSuffix(p.path, ""));
  path = path.substr(0, path.find('?'));
  const absl::Duration invisible = p.fault.visibility_delay;
  if (path == kCreateSession) {
    return store_.CreateSession(*merchant, req, invisible);
  }
  if (path == kQuerySession) return store_.QuerySession(*merchant, req);
  if (path == kQueryTransaction) {
    return store_.QueryTransaction(*merchant, req);
  }
  if (path == kInitiateTransaction) {
    return store_.InitiateTransaction(*merchant, req, invisible);
  }
  return store_.CancelAgreement(*merchant, req);
}

Json Server::Impl::CountersJson() const {
  return Json{{"requests_by_endpoint", requests_by_endpoint_},
              {"requests_by_trans_id", requests_by_trans_id_},
              {"create_requests_by_trans_id", create_requests_by_trans_id_},
              {"creates_by_trans_id", store_.creates_by_trans_id()},
              {"charges_by_trans_id", store_.charges_by_trans_id()},
              {"in_flight", in_flight_},
              {"connections", connections_},
              {"tls_connections", tls_connections_},
              {"tls_resumed_connections", tls_resumed_connections_},
              {"max_in_flight", max_in_flight_}};
}

Json Server::Impl::TransIdJson(const std::string& trans_id) const {
  auto count = [&trans_id](const std::map<std::string, int64_t>& m) {
    auto it = m.find(trans_id);
    return it == m.end() ? int64_t{0} : it->second;
  };
  int64_t sessions = count(store_.creates_by_trans_id());
  int64_t charges = count(store_.charges_by_trans_id());
  return Json{{"trans_id", trans_id},
              {"requests", count(requests_by_trans_id_)},
              {"create_requests", count(create_requests_by_trans_id_)},
              {"sessions_created", sessions},
              {"charges_created", charges},
              {"objects", sessions + charges}};
}

bool Server::Impl::HandleDuplicatePolicy(Pending* p, evhttp_cmd_type method,
                                         const Json& body) {
  if (method == EVHTTP_REQ_PUT || method == EVHTTP_REQ_POST) {
    absl::StatusOr<DuplicatePolicy> policy = ParseDuplicatePolicy(body);
    if (!policy.ok()) {
      ReplyJson(p->id, 400,
                Json{{"error", std::string(policy.status().message())}});
      return true;
    }
    store_.set_duplicate_policy(*policy);
  } else if (method == EVHTTP_REQ_DELETE) {
    store_.set_duplicate_policy(initial_duplicates_);
  } else if (method != EVHTTP_REQ_GET) {
    return false;
  }
  ReplyJson(p->id, 200, DuplicatePolicyToJson(store_.duplicate_policy()));
  return true;
}

void Server::Impl::ResetAll() {
  store_.Reset();
  store_.set_duplicate_policy(initial_duplicates_);
  faults_.Clear();
  requests_by_endpoint_.clear();
  requests_by_trans_id_.clear();
  create_requests_by_trans_id_.clear();
  max_in_flight_ = in_flight_;
  deliveries_.clear();
  connections_ = tls_connections_ = tls_resumed_connections_ = 0;
}

void Server::Impl::HandleControl(Pending* p, evhttp_cmd_type method) {
  Json body = Json::object();
  if (!p->body.empty()) {
    body = Json::parse(p->body, nullptr, false);
    if (body.is_discarded()) {
      ReplyJson(p->id, 400, Json{{"error", "body is not JSON"}});
      return;
    }
  }
  std::vector<std::string> parts =
      absl::StrSplit(p->path.substr(strlen("/sandbox/")), '/');
  const bool post = method == EVHTTP_REQ_POST;
  const bool get = method == EVHTTP_REQ_GET;
  auto reply = [this, p](const ApiResponse& r) {
    ReplyJson(p->id, r.http_status, r.body);
  };
  if (parts.size() == 3 && parts[0] == "sessions" && parts[2] == "pay" &&
      post) {
    return reply(store_.PaySession(parts[1], body));
  }
  if (parts.size() == 3 && parts[0] == "orders" && parts[2] == "complete" &&
      post) {
    return reply(store_.CompleteOrder(parts[1], body));
  }
  if (parts.size() == 3 && parts[0] == "tokens" && parts[2] == "next-outcome" &&
      post) {
    return reply(store_.SetTokenOutcome(parts[1], body));
  }
  if (parts.size() == 2 && parts[0] == "clock" && parts[1] == "advance" &&
      post) {
    if (!body.contains("seconds") || !body["seconds"].is_number_integer()) {
      return ReplyJson(p->id, 400,
                       Json{{"error", "seconds must be an integer"}});
    }
    store_.AdvanceClock(absl::Seconds(body["seconds"].get<int64_t>()));
    return ReplyJson(p->id, 200, store_.ClockJson());
  }
  if (parts.size() == 1 && parts[0] == "clock" && get) {
    return ReplyJson(p->id, 200, store_.ClockJson());
  }
  if (parts.size() == 1 && parts[0] == "counters" && get) {
    return ReplyJson(p->id, 200, CountersJson());
  }
  if (parts.size() == 2 && parts[0] == "trans-ids" && get) {
    absl::StatusOr<std::string> trans_id = PercentDecode(parts[1]);
    if (!trans_id.ok()) {
      return ReplyJson(p->id, 400, Json{{"error", "bad trans_id encoding"}});
    }
    return ReplyJson(p->id, 200, TransIdJson(*trans_id));
  }
  if (parts.size() == 1 && parts[0] == "duplicate-trans-id" &&
      HandleDuplicatePolicy(p, method, body)) {
    return;
  }
  if (parts.size() == 1 && parts[0] == "reset" && post) {
    ResetAll();
    return ReplyJson(p->id, 200, Json{{"reset", true}});
  }
  if (parts.size() == 1 && parts[0] == "webhooks" && get) {
    Json list = Json::array();
    for (const auto& [id, d] : deliveries_) {
      list.push_back(Json{{"id", d.id},
                          {"url", d.url},
                          {"notify_type", d.notify_type},
                          {"order_id", d.order_id},
                          {"attempts", d.attempts},
                          {"last_http_status", d.last_http_status},
                          {"last_error", d.last_error},
                          {"delivered", d.delivered}});
    }
    return ReplyJson(p->id, 200, list);
  }
  if (parts.size() == 1 && parts[0] == "faults") {
    if (method == EVHTTP_REQ_PUT || post) {
      absl::StatusOr<FaultConfig> c = ParseFaultConfig(body);
      if (!c.ok()) {
        return ReplyJson(p->id, 400,
                         Json{{"error", std::string(c.status().message())}});
      }
      faults_.Set(*c);
      return ReplyJson(p->id, 200, FaultConfigToJson(faults_.config()));
    }
    if (get) return ReplyJson(p->id, 200, FaultConfigToJson(faults_.config()));
    if (method == EVHTTP_REQ_DELETE) {
      faults_.Clear();
      return ReplyJson(p->id, 200, FaultConfigToJson(faults_.config()));
    }
  }
  ReplyJson(p->id, 404, Json{{"error", "unknown control path or method"}});
}

void Server::Impl::HandleCheckout(Pending* p, evhttp_cmd_type method) {
  std::vector<std::string> parts =
      absl::StrSplit(p->path.substr(strlen("/checkout/")), '/');
  auto page = [this, p](int status, const std::string& title,
                        const std::string& inner) {
    Reply(p->id, status,
          absl::StrCat("<!doctype html><html><head><meta charset=\"utf-8\">"
                       "<title>",
                       HtmlEscape(title), "</title></head><body><h1>",
                       HtmlEscape(title), "</h1>", inner, "</body></html>\n"),
          "text/html; charset=utf-8");
  };
  auto order_html = [](const ApiResponse& r) {
    if (r.http_status != 200) {
      return absl::StrCat("<p id=\"error\">",
                          HtmlEscape(r.body.value("error", "error")), "</p>");
    }
    return absl::StrCat(
        "<p>Order <span id=\"order_id\">",
        HtmlEscape(r.body.value("order_id", "")),
        "</span>: <span id=\"status\">", HtmlEscape(r.body.value("status", "")),
        "</span> ", HtmlEscape(r.body.value("error_code", "")), " ",
        HtmlEscape(r.body.value("error_description", "")), "</p>");
  };
  if (parts.size() == 2 && parts[0] == "3ds") {
    const std::string& order_id = parts[1];
    if (method == EVHTTP_REQ_POST) {
      auto form = ParseForm(p->body);
      ApiResponse r = store_.CompleteOrder(
          order_id, Json{{"outcome", form.count("outcome") != 0
                                         ? form["outcome"]
                                         : std::string("SUCCESS")}});
      return page(r.http_status, "3-D Secure", order_html(r));
    }
    return page(
        200, "3-D Secure",
        absl::StrCat("<p>Order ", HtmlEscape(order_id),
                     "</p><form method=\"post\"><button name=\"outcome\" "
                     "value=\"SUCCESS\">Authenticate</button><button "
                     "name=\"outcome\" value=\"FAILURE\">Fail</button>"
                     "</form>"));
  }
  if (parts.size() != 1) return page(404, "Not found", "");
  const std::string& session_id = parts[0];
  std::optional<Json> s = store_.SessionSummary(session_id);
  if (!s) return page(404, "Session not found", "");
  if (method == EVHTTP_REQ_POST) {
    auto form = ParseForm(p->body);
    std::string card = form["card_no"];
    card.erase(std::remove(card.begin(), card.end(), ' '), card.end());
    if (card.empty()) return page(400, "Card number required", "");
    ApiResponse r = store_.PaySession(session_id, Json{{"card_no", card}});
    std::string extra;
    if (r.http_status == 200 && r.body.contains("authentication_result")) {
      std::string url =
          r.body["authentication_result"].value("authentication_url", "");
      extra = absl::StrCat("<p><a id=\"authentication_url\" href=\"",
                           HtmlEscape(url), "\">Complete 3-D Secure</a></p>");
    }
    return page(r.http_status, "Payment result", order_html(r) + extra);
  }
  if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
    return page(405, "Method not allowed", "");
  }
  page(200, "PayKKa sandbox checkout",
       absl::StrCat(
           "<p>Session <span id=\"session_id\">", HtmlEscape(session_id),
           "</span> (<span id=\"session_status\">",
           HtmlEscape((*s)["status"].get<std::string>()),
           "</span>)</p><p>Amount: <span id=\"amount\">",
           (*s)["amount"].get<int64_t>(), "</span> <span id=\"currency\">",
           HtmlEscape((*s)["currency"].get<std::string>()),
           "</span> (minor units)</p>"
           "<form method=\"post\"><label>Card number <input name=\"card_no\" "
           "value=\"4242424242424242\"></label><button type=\"submit\">Pay"
           "</button></form><p>Test cards: 4242424242424242 and "
           "5555555555554444 succeed, 4000000000000002 declines, "
           "4000000000003220 requires 3-D Secure.</p>"));
}

// --- webhooks ---

void Server::Impl::DispatchWebhooks() {
  for (WebhookEvent& ev : store_.TakeWebhookEvents()) {
    Delivery d;
    d.id = next_delivery_id_++;
    d.url = ev.url;
    d.notify_type = ev.notify_type;
    d.order_id = ev.order_id;
    d.app_id = ev.app_id;
    d.body = Dump(ev.body);
    int64_t id = d.id;
    deliveries_[id] = std::move(d);
    AttemptDelivery(id);
  }
}

void Server::Impl::AttemptDelivery(int64_t id) {
  auto it = deliveries_.find(id);
  if (it == deliveries_.end() || shutting_down_) return;
  Delivery& d = it->second;
  ++d.attempts;
  evhttp_uri* uri = evhttp_uri_parse(d.url.c_str());
  const char* host = uri != nullptr ? evhttp_uri_get_host(uri) : nullptr;
  const char* scheme = uri != nullptr ? evhttp_uri_get_scheme(uri) : nullptr;
  if (host == nullptr || scheme == nullptr || std::string(scheme) != "http") {
    d.last_error = "only http:// notify URLs are supported by the sandbox";
    if (uri != nullptr) evhttp_uri_free(uri);
    return;
  }
  int port = evhttp_uri_get_port(uri);
  if (port < 0) port = 80;
  const char* path = evhttp_uri_get_path(uri);
  const char* query = evhttp_uri_get_query(uri);
  std::string target = (path != nullptr && *path != '\0') ? path : "/";
  if (query != nullptr) target = absl::StrCat(target, "?", query);
  std::string host_header = absl::StrCat(host, ":", port);
  evhttp_connection* conn = evhttp_connection_base_new(
      loop_->base(), nullptr, host, static_cast<uint16_t>(port));
  evhttp_uri_free(uri);
  if (conn == nullptr) {
    d.last_error = "cannot create connection";
    return;
  }
  evhttp_connection_set_timeout(conn, 10);
  auto* call = new WebhookCall{this, id, conn};
  evhttp_request* req = evhttp_request_new(&Impl::OnWebhookDone, call);
  evkeyvalq* h = evhttp_request_get_output_headers(req);
  std::string ts = absl::StrCat(NowMillis());
  std::string nonce = RandomHex(16);
  absl::StatusOr<std::string> sign = PaykkaSignatureHeader(
      platform_key_, PaykkaResponseStringToSign(ts, nonce, d.body));
  evhttp_add_header(h, "Host", host_header.c_str());
  evhttp_add_header(h, "Content-Type", "application/json; charset=utf-8");
  evhttp_add_header(h, "x-paykka-appid", d.app_id.c_str());
  evhttp_add_header(h, "x-paykka-timestamp", ts.c_str());
  evhttp_add_header(h, "x-paykka-nonce", nonce.c_str());
  evhttp_add_header(h, "x-paykka-sign-alg", "SHA256_WITH_RSA");
  evhttp_add_header(h, "x-paykka-sign", sign.ok() ? sign->c_str() : "");
  evhttp_add_header(h, "Connection", "close");
  evbuffer_add(evhttp_request_get_output_buffer(req), d.body.data(),
               d.body.size());
  if (evhttp_make_request(conn, req, EVHTTP_REQ_POST, target.c_str()) != 0) {
    // evhttp_make_request frees req on failure.
    delete call;
    evhttp_connection_free(conn);
    DeliveryFinished(id, 0, "");
  }
}

void Server::Impl::OnWebhookDone(evhttp_request* req, void* arg) {
  auto* call = static_cast<WebhookCall*>(arg);
  Impl* self = call->impl;
  int status = 0;
  std::string body;
  if (req != nullptr) {
    status = evhttp_request_get_response_code(req);
    evbuffer* in = evhttp_request_get_input_buffer(req);
    body.resize(evbuffer_get_length(in));
    if (!body.empty()) evbuffer_copyout(in, body.data(), body.size());
  }
  evhttp_connection* conn = call->conn;
  int64_t id = call->delivery_id;
  delete call;
  // The connection cannot be freed inside its own callback.
  self->loop_->Post([conn] { evhttp_connection_free(conn); });
  if (!self->shutting_down_) self->DeliveryFinished(id, status, body);
}

void Server::Impl::DeliveryFinished(int64_t id, int status,
                                    const std::string& body) {
  auto it = deliveries_.find(id);
  if (it == deliveries_.end()) return;
  Delivery& d = it->second;
  d.last_http_status = status;
  Json ack = Json::parse(body, nullptr, false);
  bool ok = status == 200 && ack.is_object() &&
            ack.value("ret_code", "") == std::string("000000");
  if (ok) {
    d.delivered = true;
    d.last_error.clear();
    return;
  }
  d.last_error = status == 0 ? "connection failed" : "not acknowledged";
  if (d.attempts >= options_.webhook_max_attempts) return;
  absl::Duration delay = options_.webhook_retry_initial;
  for (int i = 1; i < d.attempts && delay < absl::Hours(1); ++i) delay *= 2;
  loop_->RunAfter(delay, [this, id] { AttemptDelivery(id); });
}

// --- Server ---

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { impl_->Shutdown(); }

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    ServerOptions options, StoreOptions store_options,
    std::vector<Merchant> merchants, RsaPrivateKey platform_key,
    FaultConfig faults) {
  auto impl = std::make_unique<Impl>(
      std::move(options), std::move(store_options), std::move(merchants),
      std::move(platform_key), std::move(faults));
  absl::Status s = impl->Start();
  if (!s.ok()) {
    impl->Shutdown();
    return s;
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

int Server::port() const { return impl_->port(); }

int Server::tls_port() const { return impl_->tls_port(); }

std::string Server::address() const {
  return absl::StrCat("127.0.0.1:", impl_->port());
}

}  // namespace payorch::sandbox
