#include "adapters/paykka/curl_transport.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace payorch::paykka {
namespace {

// RAII owners of libcurl and libevent handles (google-cloud-cpp's
// curl_wrappers.h pattern): every handle has exactly one owner, and no path
// can leak or double-free one.
struct CurlEasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct CurlMultiDeleter {
  void operator()(CURLM* h) const { curl_multi_cleanup(h); }
};
struct CurlShareDeleter {
  void operator()(CURLSH* h) const { curl_share_cleanup(h); }
};
struct CurlSlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
struct EventDeleter {
  void operator()(event* e) const { event_free(e); }
};
using CurlPtr = std::unique_ptr<CURL, CurlEasyDeleter>;
using CurlMulti = std::unique_ptr<CURLM, CurlMultiDeleter>;
using CurlShare = std::unique_ptr<CURLSH, CurlShareDeleter>;
using CurlHeaders = std::unique_ptr<curl_slist, CurlSlistDeleter>;
using EventPtr = std::unique_ptr<event, EventDeleter>;

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// How far a transfer that failed with a given CURLcode can have got.
enum class Progress {
  // Failed before a connection was usable: nothing was written.
  kBeforeSend,
  // Can fail before or after the request was written: decided per transfer
  // by CURLINFO_REQUEST_SIZE (bytes written) and CURLINFO_PRETRANSFER_TIME
  // (connection ready, request about to be written).
  kDependsOnBytesSent,
};

struct CurlErrorClass {
  CURLcode code;
  Progress progress;
  absl::StatusCode status;
};

// THE classification of curl failures (google-cloud-cpp curl_handle.cc
// style). Codes not listed are treated as kMaybeSent/kUnavailable: assuming
// "maybe sent" is always safe (a mutating call is then checked by a query
// before anything is repeated); assuming "not sent" wrongly could charge a
// shopper twice.
constexpr CurlErrorClass kCurlErrors[] = {
    // Nothing could have reached the server: bad URL, no address, no TCP
    // connection, or the TLS handshake (before any HTTP byte) failed.
    {CURLE_UNSUPPORTED_PROTOCOL, Progress::kBeforeSend,
     absl::StatusCode::kUnavailable},
    {CURLE_URL_MALFORMAT, Progress::kBeforeSend,
     absl::StatusCode::kUnavailable},
    {CURLE_COULDNT_RESOLVE_PROXY, Progress::kBeforeSend,
     absl::StatusCode::kUnavailable},
    {CURLE_COULDNT_RESOLVE_HOST, Progress::kBeforeSend,
     absl::StatusCode::kUnavailable},
    {CURLE_COULDNT_CONNECT, Progress::kBeforeSend,
     absl::StatusCode::kUnavailable},
    {CURLE_SSL_CONNECT_ERROR, Progress::kBeforeSend,
     absl::StatusCode::kUnavailable},
    {CURLE_PEER_FAILED_VERIFICATION, Progress::kBeforeSend,
     absl::StatusCode::kUnavailable},
    {CURLE_SSL_CERTPROBLEM, Progress::kBeforeSend,
     absl::StatusCode::kUnavailable},
    {CURLE_SSL_CIPHER, Progress::kBeforeSend, absl::StatusCode::kUnavailable},
    {CURLE_SSL_CACERT_BADFILE, Progress::kBeforeSend,
     absl::StatusCode::kUnavailable},
    {CURLE_SSL_ISSUER_ERROR, Progress::kBeforeSend,
     absl::StatusCode::kUnavailable},
    // Timeout: during connect/TLS it is "not sent"; once the connection was
    // ready (pretransfer) or bytes were written, PayKKa may be processing it.
    {CURLE_OPERATION_TIMEDOUT, Progress::kDependsOnBytesSent,
     absl::StatusCode::kDeadlineExceeded},
    // Reset / EOF / garbage: on a reused keep-alive connection these can
    // happen before the first byte is written (curl then reports 0 bytes);
    // after that the server may have read the request.
    {CURLE_SEND_ERROR, Progress::kDependsOnBytesSent,
     absl::StatusCode::kUnavailable},
    {CURLE_RECV_ERROR, Progress::kDependsOnBytesSent,
     absl::StatusCode::kUnavailable},
    {CURLE_GOT_NOTHING, Progress::kDependsOnBytesSent,
     absl::StatusCode::kUnavailable},
    {CURLE_PARTIAL_FILE, Progress::kDependsOnBytesSent,
     absl::StatusCode::kUnavailable},
    {CURLE_WEIRD_SERVER_REPLY, Progress::kDependsOnBytesSent,
     absl::StatusCode::kUnavailable},
    {CURLE_HTTP2, Progress::kDependsOnBytesSent,
     absl::StatusCode::kUnavailable},
    {CURLE_HTTP2_STREAM, Progress::kDependsOnBytesSent,
     absl::StatusCode::kUnavailable},
    // An at-most-once request on a reused connection that died after its
    // body was (partly) written: libcurl wanted to re-send it on a new
    // connection and could not rewind the body. Written once: maybe sent.
    {CURLE_SEND_FAIL_REWIND, Progress::kDependsOnBytesSent,
     absl::StatusCode::kUnavailable},
    // The response body exceeded Options::max_response_bytes.
    {CURLE_WRITE_ERROR, Progress::kDependsOnBytesSent,
     absl::StatusCode::kUnavailable},
};

absl::Status ClassifyCurlError(CURLcode code, CURL* easy,
                               const char* error_buffer,
                               size_t body_bytes_read) {
  const CurlErrorClass* cls = nullptr;
  for (const auto& c : kCurlErrors) {
    if (c.code == code) cls = &c;
  }
  SendState state = SendState::kMaybeSent;
  absl::StatusCode status = absl::StatusCode::kUnavailable;
  if (cls != nullptr) {
    status = cls->status;
    // CURLINFO_REQUEST_SIZE counts every byte of every request header
    // written during the transfer, including an attempt libcurl made on a
    // reused connection before it failed: a "connect failed" after such an
    // attempt is not "not sent".
    long request_bytes = 0;
    curl_off_t pretransfer_us = 0;
    curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request_bytes);
    curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us);
    const bool before_send =
        cls->progress == Progress::kBeforeSend || pretransfer_us == 0;
    state = (before_send && request_bytes == 0 && body_bytes_read == 0)
                ? SendState::kNotSent
                : SendState::kMaybeSent;
  }
  std::string message = absl::StrCat("curl error ", static_cast<int>(code),
                                     ": ", curl_easy_strerror(code));
  if (error_buffer != nullptr && error_buffer[0] != '\0') {
    absl::StrAppend(&message, " (", error_buffer, ")");
  }
  absl::StrAppend(&message, state == SendState::kNotSent
                                ? "; request not sent"
                                : "; request may have been sent");
  return TransportError(status, state, message);
}

struct Transfer {
  CurlPtr easy;
  CurlHeaders headers;
  HttpRequest request;
  HttpResponse response;
  HttpCallback done;
  char error[CURL_ERROR_SIZE] = {0};
  // At-most-once requests: the body is handed to libcurl by OnRead, which
  // cannot rewind, so libcurl can never send it a second time.
  size_t body_read = 0;
  size_t max_response_bytes = 0;
  bool too_large = false;
};

size_t OnBody(char* data, size_t size, size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  if (t->response.body.size() + size * n > t->max_response_bytes) {
    t->too_large = true;
    return 0;  // CURLE_WRITE_ERROR
  }
  t->response.body.append(data, size * n);
  return size * n;
}

// CURLOPT_READFUNCTION for at-most-once bodies. There is deliberately no
// CURLOPT_SEEKFUNCTION: when a reused connection dies after body bytes were
// written, libcurl 7.88 would rewind and re-send the request on a new
// connection; without a way to rewind it fails with CURLE_SEND_FAIL_REWIND.
size_t OnRead(char* buffer, size_t size, size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  const std::string& body = t->request.body;
  const size_t len = std::min(size * n, body.size() - t->body_read);
  std::memcpy(buffer, body.data() + t->body_read, len);
  t->body_read += len;
  return len;
}

size_t OnHeader(char* data, size_t size, size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  absl::string_view line(data, size * n);
  if (absl::StartsWith(line, "HTTP/")) {
    // A new status line (e.g. after "100 Continue"): forget earlier headers.
    t->response.headers.clear();
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return size * n;
  std::string name =
      absl::AsciiStrToLower(absl::StripAsciiWhitespace(line.substr(0, colon)));
  t->response.headers[name] =
      std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  return size * n;
}

// CURLOPT_SSL_CTX_FUNCTION: OpenSSL frees a connection's 16 KiB read and
// write buffers whenever they are empty, i.e. while the connection waits for
// PayKKa's answer or sits idle in the pool, instead of holding ~34 KiB per
// connection (thousands of calls in flight each hold one).
CURLcode OnSslContext(CURL*, void* ssl_ctx, void*) {
  SSL_CTX_set_mode(static_cast<SSL_CTX*>(ssl_ctx), SSL_MODE_RELEASE_BUFFERS);
  return CURLE_OK;
}

void SetTls(CURL* e, const CurlMultiTransport::Options& options) {
  curl_easy_setopt(e, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, options.verify_peer ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, options.verify_peer ? 2L : 0L);
  if (!options.ca_file.empty()) {
    curl_easy_setopt(e, CURLOPT_CAINFO, options.ca_file.c_str());
  }
  curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, &OnSslContext);
}

// The method, and the body: for an at-most-once request through OnRead
// (never rewound, so never re-sent by libcurl), otherwise as POSTFIELDS. The
// body stays alive in the Transfer until the handle is cleaned up.
void SetMethodAndBody(Transfer& t) {
  CURL* e = t.easy.get();
  const std::string& method = t.request.method;
  if (method == "GET") {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    return;
  }
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                   static_cast<curl_off_t>(t.request.body.size()));
  if (t.request.at_most_once) {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, &OnRead);
    curl_easy_setopt(e, CURLOPT_READDATA, &t);
  } else {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t.request.body.data());
  }
  if (method != "POST") {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
}

struct SocketInfo {
  curl_socket_t fd = CURL_SOCKET_BAD;
  EventPtr ev;
};

}  // namespace

class CurlMultiTransport::Impl {
 public:
  Impl(EventLoop* loop, Options options)
      : loop_(loop), options_(std::move(options)) {}

  ~Impl() {
    // Shutdown() already ran on the loop thread.
  }

  absl::Status Init() {
    GlobalInitOnce();
    multi_.reset(curl_multi_init());
    share_.reset(curl_share_init());
    if (multi_ == nullptr || share_ == nullptr) {
      return absl::InternalError("curl_multi_init/curl_share_init failed");
    }
    // All curl calls happen on the loop thread, so the share needs no lock
    // callbacks.
    CURLSH* share = share_.get();
    CURLM* multi = multi_.get();
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &Impl::OnSocket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &Impl::OnTimerChange);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      options_.max_host_connections);
    if (options_.max_idle_connections > 0) {
      curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS,
                        options_.max_idle_connections);
    }
    timer_.reset(evtimer_new(loop_->base(), &Impl::OnTimeout, this));
    if (timer_ == nullptr) return absl::InternalError("evtimer_new failed");
    return absl::OkStatus();
  }

  void Start(HttpRequest request, absl::Time deadline, HttpCallback done) {
    if (shut_down_) {
      std::move(done)(TransportError(absl::StatusCode::kCancelled,
                                     SendState::kNotSent,
                                     "transport shut down; request not sent"));
      return;
    }
    absl::Duration remaining = deadline - absl::Now();
    if (remaining <= absl::ZeroDuration()) {
      std::move(done)(TransportError(
          absl::StatusCode::kDeadlineExceeded, SendState::kNotSent,
          "deadline passed before the request was sent"));
      return;
    }
    auto t = std::make_unique<Transfer>();
    t->request = std::move(request);
    t->done = std::move(done);
    t->easy.reset(curl_easy_init());
    if (t->easy == nullptr) {
      std::move(t->done)(TransportError(absl::StatusCode::kInternal,
                                        SendState::kNotSent,
                                        "curl_easy_init failed"));
      return;
    }
    t->max_response_bytes = options_.max_response_bytes;
    CURL* e = t->easy.get();
    const long timeout_ms = std::max<long>(
        1, static_cast<long>(std::ceil(absl::ToDoubleMilliseconds(remaining))));
    const long connect_ms = std::max<long>(
        1, std::min<long>(timeout_ms,
                          absl::ToInt64Milliseconds(options_.connect_timeout)));
    curl_easy_setopt(e, CURLOPT_URL, t->request.url.c_str());
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_SHARE, share_.get());
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    // PayKKa's answers are a few hundred bytes of JSON: a 4 KiB receive
    // buffer (libcurl's default is 16 KiB) keeps memory per call in flight
    // down when thousands are held; larger bodies just take more reads.
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L);
    SetTls(e, options_);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &OnBody);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &OnHeader);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
    curl_slist* headers = nullptr;
    for (const auto& [name, value] : t->request.headers) {
      headers =
          curl_slist_append(headers, absl::StrCat(name, ": ", value).c_str());
    }
    // No "Expect: 100-continue" round trip before the body.
    headers = curl_slist_append(headers, "Expect:");
    t->headers.reset(headers);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    SetMethodAndBody(*t);
    if (t->request.at_most_once && options_.fresh_connection_for_at_most_once) {
      curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
      curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    }
    CURLMcode rc = curl_multi_add_handle(multi_.get(), e);
    if (rc != CURLM_OK) {
      std::move(t->done)(TransportError(
          absl::StatusCode::kInternal, SendState::kNotSent,
          absl::StrCat("curl_multi_add_handle: ", curl_multi_strerror(rc))));
      return;
    }
    Transfer* raw = t.get();
    transfers_.emplace(raw, std::move(t));
  }

  // Cancels what is in flight and frees every curl and libevent resource.
  // Loop thread.
  void Shutdown() {
    if (shut_down_) return;
    shut_down_ = true;
    auto transfers = std::move(transfers_);
    transfers_.clear();
    for (auto& [raw, t] : transfers) {
      curl_multi_remove_handle(multi_.get(), t->easy.get());
      HttpCallback done = std::move(t->done);
      t.reset();
      std::move(done)(TransportError(absl::StatusCode::kCancelled,
                                     SendState::kMaybeSent,
                                     "transport shut down while in flight"));
    }
    // Easy handles are gone; the multi handle before the share it uses.
    multi_.reset();
    share_.reset();
    sockets_.clear();
    timer_.reset();
  }

  int in_flight() const { return static_cast<int>(transfers_.size()); }
  EventLoop* loop() const { return loop_; }

 private:
  // CURLMOPT_SOCKETFUNCTION: watch `fd` for what curl wants.
  static int OnSocket(CURL*, curl_socket_t fd, int what, void* userp,
                      void* socketp) {
    auto* self = static_cast<Impl*>(userp);
    auto* info = static_cast<SocketInfo*>(socketp);
    if (what == CURL_POLL_REMOVE) {
      if (info != nullptr) {
        curl_multi_assign(self->multi_.get(), fd, nullptr);
        self->sockets_.erase(info);  // frees its event
      }
      return 0;
    }
    if (info == nullptr) {
      auto owned = std::make_unique<SocketInfo>();
      info = owned.get();
      self->sockets_.emplace(info, std::move(owned));
      curl_multi_assign(self->multi_.get(), fd, info);
    }
    short kind = EV_PERSIST;
    if (what & CURL_POLL_IN) kind |= EV_READ;
    if (what & CURL_POLL_OUT) kind |= EV_WRITE;
    info->fd = fd;
    info->ev.reset(
        event_new(self->loop_->base(), fd, kind, &Impl::OnSocketEvent, self));
    event_add(info->ev.get(), nullptr);
    return 0;
  }

  // CURLMOPT_TIMERFUNCTION: curl wants OnTimeout after `timeout_ms` (-1:
  // cancel). curl forbids calling socket_action from here, so even a 0 ms
  // timeout goes through the event loop.
  static int OnTimerChange(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<Impl*>(userp);
    if (timeout_ms < 0) {
      evtimer_del(self->timer_.get());
      return 0;
    }
    timeval tv;
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(self->timer_.get(), &tv);
    return 0;
  }

  static void OnSocketEvent(evutil_socket_t fd, short what, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    int action = 0;
    if (what & EV_READ) action |= CURL_CSELECT_IN;
    if (what & EV_WRITE) action |= CURL_CSELECT_OUT;
    int running = 0;
    curl_multi_socket_action(self->multi_.get(), fd, action, &running);
    self->CompleteFinished();
    if (running <= 0 && self->timer_ != nullptr) {
      evtimer_del(self->timer_.get());
    }
  }

  static void OnTimeout(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    int running = 0;
    curl_multi_socket_action(self->multi_.get(), CURL_SOCKET_TIMEOUT, 0,
                             &running);
    self->CompleteFinished();
  }

  // Hands every finished transfer's result to its callback.
  void CompleteFinished() {
    CURLMsg* msg = nullptr;
    int left = 0;
    while (multi_ != nullptr &&
           (msg = curl_multi_info_read(multi_.get(), &left)) != nullptr) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* easy = msg->easy_handle;
      CURLcode code = msg->data.result;
      Transfer* raw = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &raw);
      auto it = transfers_.find(raw);
      if (it == transfers_.end()) continue;
      std::unique_ptr<Transfer> t = std::move(it->second);
      transfers_.erase(it);
      absl::StatusOr<HttpResponse> result;
      if (code == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        t->response.status = static_cast<int>(status);
        result = std::move(t->response);
      } else {
        if (t->too_large) {
          std::snprintf(t->error, sizeof(t->error),
                        "response body over %zu bytes", t->max_response_bytes);
        }
        result = ClassifyCurlError(code, easy, t->error, t->body_read);
      }
      curl_multi_remove_handle(multi_.get(), easy);
      HttpCallback done = std::move(t->done);
      t.reset();
      std::move(done)(std::move(result));
    }
  }

  EventLoop* loop_;
  Options options_;
  CurlMulti multi_;
  CurlShare share_;
  EventPtr timer_;
  bool shut_down_ = false;
  absl::flat_hash_map<Transfer*, std::unique_ptr<Transfer>> transfers_;
  absl::flat_hash_map<SocketInfo*, std::unique_ptr<SocketInfo>> sockets_;
};

absl::StatusOr<std::unique_ptr<CurlMultiTransport>> CurlMultiTransport::Create(
    EventLoop* loop, Options options) {
  auto impl = std::make_unique<Impl>(loop, std::move(options));
  absl::Status status = impl->Init();
  if (!status.ok()) {
    impl->Shutdown();
    return status;
  }
  return std::unique_ptr<CurlMultiTransport>(
      new CurlMultiTransport(std::move(impl)));
}

CurlMultiTransport::CurlMultiTransport(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

CurlMultiTransport::~CurlMultiTransport() {
  EventLoop* loop = impl_->loop();
  if (loop->InLoopThread()) {
    impl_->Shutdown();
    return;
  }
  absl::Notification done;
  loop->Post([this, &done] {
    impl_->Shutdown();
    done.Notify();
  });
  done.WaitForNotification();
}

void CurlMultiTransport::Send(HttpRequest request, absl::Time deadline,
                              HttpCallback done) {
  Impl* impl = impl_.get();
  impl->loop()->Post([impl, request = std::move(request), deadline,
                      done = std::move(done)]() mutable {
    impl->Start(std::move(request), deadline, std::move(done));
  });
}

int CurlMultiTransport::InFlightForTesting() const {
  return impl_->in_flight();
}

}  // namespace payorch::paykka
