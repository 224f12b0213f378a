#include "adapters/paykka/curl_transport.h"

#include <curl/curl.h>
#include <event2/event.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace payorch::paykka {
namespace {

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
};

absl::Status ClassifyCurlError(CURLcode code, CURL* easy,
                               const char* error_buffer) {
  const CurlErrorClass* cls = nullptr;
  for (const auto& c : kCurlErrors) {
    if (c.code == code) cls = &c;
  }
  SendState state = SendState::kMaybeSent;
  absl::StatusCode status = absl::StatusCode::kUnavailable;
  if (cls != nullptr) {
    status = cls->status;
    if (cls->progress == Progress::kBeforeSend) {
      state = SendState::kNotSent;
    } else {
      long request_bytes = 0;
      curl_off_t pretransfer_us = 0;
      curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request_bytes);
      curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us);
      state = (request_bytes > 0 || pretransfer_us > 0) ? SendState::kMaybeSent
                                                        : SendState::kNotSent;
    }
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
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  HttpRequest request;
  HttpResponse response;
  HttpCallback done;
  char error[CURL_ERROR_SIZE] = {0};

  ~Transfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (headers != nullptr) curl_slist_free_all(headers);
  }
};

size_t OnBody(char* data, size_t size, size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  t->response.body.append(data, size * n);
  return size * n;
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

struct SocketInfo {
  curl_socket_t fd;
  event* ev = nullptr;
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
    multi_ = curl_multi_init();
    share_ = curl_share_init();
    if (multi_ == nullptr || share_ == nullptr) {
      return absl::InternalError("curl_multi_init/curl_share_init failed");
    }
    // All curl calls happen on the loop thread, so the share needs no lock
    // callbacks.
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Impl::OnSocket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Impl::OnTimerChange);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                      options_.max_host_connections);
    if (options_.max_idle_connections > 0) {
      curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS,
                        options_.max_idle_connections);
    }
    timer_ = evtimer_new(loop_->base(), &Impl::OnTimeout, this);
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
    t->easy = curl_easy_init();
    if (t->easy == nullptr) {
      std::move(t->done)(TransportError(absl::StatusCode::kInternal,
                                        SendState::kNotSent,
                                        "curl_easy_init failed"));
      return;
    }
    CURL* e = t->easy;
    const long timeout_ms = std::max<long>(
        1, static_cast<long>(std::ceil(absl::ToDoubleMilliseconds(remaining))));
    const long connect_ms = std::max<long>(
        1, std::min<long>(timeout_ms,
                          absl::ToInt64Milliseconds(options_.connect_timeout)));
    curl_easy_setopt(e, CURLOPT_URL, t->request.url.c_str());
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_SHARE, share_);
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
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, options_.verify_peer ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, options_.verify_peer ? 2L : 0L);
    if (!options_.ca_file.empty()) {
      curl_easy_setopt(e, CURLOPT_CAINFO, options_.ca_file.c_str());
    }
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &OnBody);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &OnHeader);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
    for (const auto& [name, value] : t->request.headers) {
      t->headers = curl_slist_append(t->headers,
                                     absl::StrCat(name, ": ", value).c_str());
    }
    // No "Expect: 100-continue" round trip before the body.
    t->headers = curl_slist_append(t->headers, "Expect:");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    const std::string& method = t->request.method;
    if (method == "GET") {
      curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
      // The body stays alive in the Transfer until the handle is cleaned up.
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(t->request.body.size()));
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->request.body.data());
      if (method != "POST") {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method.c_str());
      }
    }
    CURLMcode rc = curl_multi_add_handle(multi_, e);
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
      curl_multi_remove_handle(multi_, t->easy);
      HttpCallback done = std::move(t->done);
      t.reset();
      std::move(done)(TransportError(absl::StatusCode::kCancelled,
                                     SendState::kMaybeSent,
                                     "transport shut down while in flight"));
    }
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
    if (share_ != nullptr) curl_share_cleanup(share_);
    multi_ = nullptr;
    share_ = nullptr;
    for (SocketInfo* s : sockets_) {
      if (s->ev != nullptr) event_free(s->ev);
      delete s;
    }
    sockets_.clear();
    if (timer_ != nullptr) event_free(timer_);
    timer_ = nullptr;
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
        if (info->ev != nullptr) event_free(info->ev);
        self->sockets_.erase(info);
        delete info;
        curl_multi_assign(self->multi_, fd, nullptr);
      }
      return 0;
    }
    if (info == nullptr) {
      info = new SocketInfo{fd};
      self->sockets_.insert(info);
      curl_multi_assign(self->multi_, fd, info);
    } else if (info->ev != nullptr) {
      event_free(info->ev);
    }
    short kind = EV_PERSIST;
    if (what & CURL_POLL_IN) kind |= EV_READ;
    if (what & CURL_POLL_OUT) kind |= EV_WRITE;
    info->fd = fd;
    info->ev =
        event_new(self->loop_->base(), fd, kind, &Impl::OnSocketEvent, self);
    event_add(info->ev, nullptr);
    return 0;
  }

  // CURLMOPT_TIMERFUNCTION: curl wants OnTimeout after `timeout_ms` (-1:
  // cancel). curl forbids calling socket_action from here, so even a 0 ms
  // timeout goes through the event loop.
  static int OnTimerChange(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<Impl*>(userp);
    if (timeout_ms < 0) {
      evtimer_del(self->timer_);
      return 0;
    }
    timeval tv;
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(self->timer_, &tv);
    return 0;
  }

  static void OnSocketEvent(evutil_socket_t fd, short what, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    int action = 0;
    if (what & EV_READ) action |= CURL_CSELECT_IN;
    if (what & EV_WRITE) action |= CURL_CSELECT_OUT;
    int running = 0;
    curl_multi_socket_action(self->multi_, fd, action, &running);
    self->CompleteFinished();
    if (running <= 0 && self->timer_ != nullptr) evtimer_del(self->timer_);
  }

  static void OnTimeout(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    int running = 0;
    curl_multi_socket_action(self->multi_, CURL_SOCKET_TIMEOUT, 0, &running);
    self->CompleteFinished();
  }

  // Hands every finished transfer's result to its callback.
  void CompleteFinished() {
    CURLMsg* msg = nullptr;
    int left = 0;
    while (multi_ != nullptr &&
           (msg = curl_multi_info_read(multi_, &left)) != nullptr) {
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
        result = ClassifyCurlError(code, easy, t->error);
      }
      curl_multi_remove_handle(multi_, easy);
      HttpCallback done = std::move(t->done);
      t.reset();
      std::move(done)(std::move(result));
    }
  }

  EventLoop* loop_;
  Options options_;
  CURLM* multi_ = nullptr;
  CURLSH* share_ = nullptr;
  event* timer_ = nullptr;
  bool shut_down_ = false;
  absl::flat_hash_map<Transfer*, std::unique_ptr<Transfer>> transfers_;
  absl::flat_hash_set<SocketInfo*> sockets_;
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
