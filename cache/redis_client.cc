#include "cache/redis_client.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "common/crypto.h"

namespace payorch::cache {
namespace {

RedisReply Convert(const redisReply& r) {
  RedisReply out;
  switch (r.type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r.elements);
      for (size_t i = 0; i < r.elements; ++i) {
        out.elements.push_back(Convert(*r.element[i]));
      }
      break;
    default:
      out.type = RedisReply::Type::kNil;
  }
  return out;
}

// Error replies after which this connection is useless: the server became a
// replica (failover), lost its primary, or forgot our AUTH. Reconnecting (to
// whatever the host name now points at) is the only way forward.
bool ShouldReconnectAfter(const RedisReply& reply) {
  return reply.is_error() && (absl::StartsWith(reply.str, "READONLY") ||
                              absl::StartsWith(reply.str, "MASTERDOWN") ||
                              absl::StartsWith(reply.str, "NOAUTH"));
}

void Log(const std::string& message) {
  std::fprintf(stderr, "payorch: redis: %s\n", message.c_str());
}

}  // namespace

absl::StatusOr<RedisEndpoint> ParseRedisUri(const std::string& uri) {
  // Messages never echo the URI: it may hold a password.
  absl::string_view rest(uri);
  if (absl::StartsWith(rest, "rediss://")) {
    return absl::InvalidArgumentError(
        "rediss:// (TLS) is not supported (hiredis 0.14 has no TLS)");
  }
  if (!absl::ConsumePrefix(&rest, "redis://")) {
    return absl::InvalidArgumentError(
        "Redis URI must look like redis://[[user]:password@]host[:port][/db]");
  }
  RedisEndpoint endpoint;
  absl::string_view authority = rest;
  if (size_t slash = rest.find('/'); slash != absl::string_view::npos) {
    authority = rest.substr(0, slash);
    absl::string_view path = rest.substr(slash + 1);
    if (!path.empty() &&
        (!absl::SimpleAtoi(path, &endpoint.db) || endpoint.db < 0)) {
      return absl::InvalidArgumentError(
          "Redis URI: the path must be a database number");
    }
  }
  if (size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    absl::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    size_t colon = userinfo.find(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          "Redis URI: credentials must be [user]:password@");
    }
    auto user = PercentDecode(userinfo.substr(0, colon));
    auto password = PercentDecode(userinfo.substr(colon + 1));
    if (!user.ok() || !password.ok()) {
      return absl::InvalidArgumentError(
          "Redis URI: malformed %-escape in the credentials");
    }
    endpoint.user = *std::move(user);
    endpoint.password = *std::move(password);
  }
  absl::string_view port_text;
  if (absl::StartsWith(authority, "[")) {  // [IPv6]:port
    size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("Redis URI: unterminated [IPv6] host");
    }
    endpoint.host = std::string(authority.substr(1, close - 1));
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty() && !absl::ConsumePrefix(&after, ":")) {
      return absl::InvalidArgumentError("Redis URI: junk after [IPv6] host");
    }
    port_text = after;
  } else if (size_t colon = authority.rfind(':');
             colon != absl::string_view::npos) {
    endpoint.host = std::string(authority.substr(0, colon));
    port_text = authority.substr(colon + 1);
  } else {
    endpoint.host = std::string(authority);
  }
  if (endpoint.host.empty()) {
    return absl::InvalidArgumentError("Redis URI: missing host");
  }
  if (!port_text.empty() && (!absl::SimpleAtoi(port_text, &endpoint.port) ||
                             endpoint.port <= 0 || endpoint.port > 65535)) {
    return absl::InvalidArgumentError("Redis URI: bad port");
  }
  return endpoint;
}

// Everything below runs on the loop thread. Connection states:
//   ctx_ == nullptr                 disconnected (a reconnect timer may run)
//   ctx_ != nullptr && !ready_      connecting: TCP + AUTH/SELECT/PING sent
//   ctx_ != nullptr && ready_       connected; Healthy()
// Commands are written to hiredis while connecting (they queue behind the
// handshake) or connected; while disconnected they fail at once (fail closed,
// no queueing behind an outage).
class RedisClient::Impl {
 public:
  Impl(EventLoop* loop, RedisEndpoint endpoint, RedisClientOptions options)
      : loop_(loop),
        endpoint_(std::move(endpoint)),
        options_(std::move(options)),
        rng_(std::random_device{}()) {}

  ~Impl() {
    // Normally Shutdown() ran on the loop thread already. If the loop was
    // stopped first, the thread is gone and this is the only code left.
    Shutdown();
  }

  bool healthy() const { return healthy_.load(std::memory_order_acquire); }

  void Start() {
    event_base* base = loop_->base();
    reconnect_timer_ = evtimer_new(base, &Impl::OnReconnectTimer, this);
    connect_timer_ = evtimer_new(base, &Impl::OnConnectTimeout, this);
    if (options_.ping_interval > absl::ZeroDuration()) {
      ping_timer_ = event_new(base, -1, EV_PERSIST, &Impl::OnPingTimer, this);
      timeval tv = absl::ToTimeval(options_.ping_interval);
      event_add(ping_timer_, &tv);
    }
    // Every command shares one timeout, so libevent can keep their timers in
    // a queue instead of its heap (O(1) per command).
    timeval tv = absl::ToTimeval(options_.command_timeout);
    command_timeout_ = event_base_init_common_timeout(base, &tv);
    started_ = true;
    Connect();
  }

  void Send(std::vector<std::string> args, Callback done) {
    if (shutting_down_ || !started_) {
      std::move(done)(absl::UnavailableError("Redis client is shut down"));
      return;
    }
    if (ctx_ == nullptr) {
      std::move(done)(absl::UnavailableError(
          absl::StrCat("Redis is not connected: ", last_error_)));
      return;
    }
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    argv.reserve(args.size());
    lens.reserve(args.size());
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* pending = new Pending{this, ctx_, nullptr, std::move(done), false, 0};
    if (redisAsyncCommandArgv(ctx_, &Impl::OnReply, pending,
                              static_cast<int>(argv.size()), argv.data(),
                              lens.data()) != REDIS_OK) {
      Callback cb = std::move(pending->done);
      delete pending;
      std::move(cb)(absl::UnavailableError("Redis connection is closing"));
      return;
    }
    pending->timer =
        evtimer_new(loop_->base(), &Impl::OnCommandTimeout, pending);
    evtimer_add(pending->timer, command_timeout_);
  }

  // Closes everything; pending commands fail with kUnavailable. Idempotent.
  void Shutdown() {
    if (shutting_down_) return;
    shutting_down_ = true;
    healthy_.store(false, std::memory_order_release);
    for (event** timer : {&reconnect_timer_, &connect_timer_, &ping_timer_}) {
      if (*timer != nullptr) {
        event_free(*timer);
        *timer = nullptr;
      }
    }
    if (ctx_ != nullptr) {
      redisAsyncContext* ctx = ctx_;
      ctx_ = nullptr;
      redisAsyncFree(ctx);  // runs every pending callback with a NULL reply
    }
  }

 private:
  // One command in flight. Owned by hiredis's callback list: OnReply runs
  // exactly once for every accepted command (with NULL when the connection is
  // freed) and deletes it. A timeout answers the caller early and marks it.
  struct Pending {
    Impl* impl;
    redisAsyncContext* ctx;
    event* timer;
    Callback done;
    bool answered;
    int extensions =
        0;  // times the timeout was extended (see OnCommandTimeout)
  };

  void Connect() {
    if (shutting_down_ || ctx_ != nullptr) return;
    // Host names are resolved here, synchronously (hiredis 0.14 has no async
    // resolver); in Kubernetes that is a cluster-local lookup.
    redisAsyncContext* ctx =
        redisAsyncConnect(endpoint_.host.c_str(), endpoint_.port);
    if (ctx == nullptr || ctx->err != 0) {
      SetDown(ctx == nullptr ? std::string("out of memory")
                             : std::string(ctx->errstr));
      if (ctx != nullptr) redisAsyncFree(ctx);
      ScheduleReconnect();
      return;
    }
    ctx->data = this;
    redisLibeventAttach(ctx, loop_->base());
    redisAsyncSetConnectCallback(ctx, &Impl::OnConnect);
    redisAsyncSetDisconnectCallback(ctx, &Impl::OnDisconnect);
    redisEnableKeepAlive(&ctx->c);
    ctx_ = ctx;
    timeval tv = absl::ToTimeval(options_.connect_timeout);
    evtimer_add(connect_timer_, &tv);

    // The handshake: replies arrive in order, so PONG means AUTH and SELECT
    // succeeded too. A failed AUTH/SELECT drops the connection.
    auto check = [this, ctx](absl::StatusOr<RedisReply> reply) {
      if (reply.ok() && reply->is_error() && ctx == ctx_) {
        Drop(absl::StrCat("handshake failed: ", reply->str));
      }
    };
    if (!endpoint_.password.empty()) {
      std::vector<std::string> auth = {"AUTH"};
      if (!endpoint_.user.empty()) auth.push_back(endpoint_.user);
      auth.push_back(endpoint_.password);
      Send(std::move(auth), check);
    }
    if (endpoint_.db != 0) {
      Send({"SELECT", std::to_string(endpoint_.db)}, check);
    }
    Send({"PING"}, [this, ctx](absl::StatusOr<RedisReply> reply) {
      if (ctx != ctx_ || !reply.ok()) return;  // disconnect handled elsewhere
      if (reply->is_error()) {
        Drop(absl::StrCat("handshake failed: ", reply->str));
        return;
      }
      ready_ = true;
      attempt_ = 0;
      evtimer_del(connect_timer_);
      healthy_.store(true, std::memory_order_release);
      Log(absl::StrCat("connected to ", endpoint_.host, ":", endpoint_.port));
      last_error_.clear();
    });
  }

  // Forgets the current connection and schedules a new one. Safe inside a
  // command callback (hiredis then defers the free), not inside OnConnect.
  void Drop(const std::string& why) {
    if (ctx_ == nullptr) return;
    redisAsyncContext* ctx = ctx_;
    ctx_ = nullptr;
    SetDown(why);
    redisAsyncFree(ctx);  // pending callbacks run now with NULL replies
    ScheduleReconnect();
  }

  // Marks the connection gone (the context is being freed by whoever called).
  void SetDown(const std::string& why) {
    const bool was_ready = ready_;
    ready_ = false;
    ping_outstanding_ = false;
    healthy_.store(false, std::memory_order_release);
    if (connect_timer_ != nullptr) evtimer_del(connect_timer_);
    if (was_ready || last_error_ != why) {
      Log(absl::StrCat(was_ready ? "connection lost: " : "cannot connect: ",
                       why));
    }
    last_error_ = why;
  }

  void ScheduleReconnect() {
    if (shutting_down_ || reconnect_timer_ == nullptr ||
        evtimer_pending(reconnect_timer_, nullptr)) {
      return;
    }
    absl::Duration delay = options_.initial_backoff;
    for (int i = 0; i < attempt_ && delay < options_.max_backoff; ++i) {
      delay *= 2;
    }
    delay = std::min(delay, options_.max_backoff);
    // "Equal jitter": uniform in [delay/2, delay].
    std::uniform_int_distribution<int64_t> jitter(
        0, absl::ToInt64Microseconds(delay) / 2);
    delay = delay / 2 + absl::Microseconds(jitter(rng_));
    ++attempt_;
    timeval tv = absl::ToTimeval(delay);
    evtimer_add(reconnect_timer_, &tv);
  }

  static void OnConnect(const redisAsyncContext* ac, int status) {
    auto* self = static_cast<Impl*>(ac->data);
    if (ac != self->ctx_ || status == REDIS_OK) return;  // OK: await PONG
    // hiredis frees `ac` right after this returns (and fails its commands).
    self->ctx_ = nullptr;
    self->SetDown(ac->errstr);
    self->ScheduleReconnect();
  }

  static void OnDisconnect(const redisAsyncContext* ac, int status) {
    auto* self = static_cast<Impl*>(ac->data);
    if (ac != self->ctx_) return;  // we dropped it ourselves
    self->ctx_ = nullptr;
    self->SetDown(status == REDIS_OK ? std::string("closed")
                                     : std::string(ac->errstr));
    self->ScheduleReconnect();
  }

  static void OnReply(redisAsyncContext* ac, void* r, void* privdata) {
    auto* pending = static_cast<Pending*>(privdata);
    Impl* self = pending->impl;
    redisAsyncContext* ctx = pending->ctx;
    if (pending->timer != nullptr) event_free(pending->timer);
    Callback done = std::move(pending->done);
    const bool answered = pending->answered;
    delete pending;
    if (answered) return;
    if (r == nullptr) {
      // hiredis fails pending commands before it reports the disconnect, so
      // its own error text is the fresher one.
      std::move(done)(absl::UnavailableError(
          absl::StrCat("Redis connection lost before the reply: ",
                       ac->err != 0 ? ac->errstr : self->last_error_)));
      return;
    }
    self->last_reply_ = absl::Now();
    RedisReply reply = Convert(*static_cast<redisReply*>(r));
    const bool reconnect = ShouldReconnectAfter(reply);
    std::move(done)(std::move(reply));
    if (reconnect && ctx == self->ctx_) {
      self->Drop("server answered READONLY/MASTERDOWN/NOAUTH");
    }
  }

  static void OnCommandTimeout(int, short, void* arg) {
    auto* pending = static_cast<Pending*>(arg);
    Impl* self = pending->impl;
    // Replies still arriving within the timeout means a backlog (a busy loop
    // thread, a burst), not a stuck server: give the command more time, up to
    // kMaxExtensions timeouts, instead of failing everything in the pipe.
    constexpr int kMaxExtensions = 3;
    if (pending->ctx == self->ctx_ && pending->extensions < kMaxExtensions &&
        absl::Now() - self->last_reply_ < self->options_.command_timeout) {
      ++pending->extensions;
      evtimer_add(pending->timer, self->command_timeout_);
      return;
    }
    event_free(pending->timer);
    pending->timer = nullptr;
    pending->answered = true;
    Callback done = std::move(pending->done);
    const std::string why =
        absl::StrCat("no reply within ",
                     absl::FormatDuration(self->options_.command_timeout));
    // Replies come in order, so everything behind this command is stuck as
    // well: drop the connection (which deletes `pending`) and start over.
    if (pending->ctx == self->ctx_) self->Drop(why);
    std::move(done)(absl::UnavailableError(
        absl::StrCat("Redis command timed out (", why,
                     "); it may or may not have been applied")));
  }

  static void OnReconnectTimer(int, short, void* arg) {
    static_cast<Impl*>(arg)->Connect();
  }

  static void OnConnectTimeout(int, short, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    if (self->ctx_ != nullptr && !self->ready_) {
      self->Drop(
          absl::StrCat("connect timed out after ",
                       absl::FormatDuration(self->options_.connect_timeout)));
    }
  }

  static void OnPingTimer(int, short, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    if (!self->ready_ || self->ping_outstanding_) return;
    self->ping_outstanding_ = true;
    redisAsyncContext* ctx = self->ctx_;
    self->Send({"PING"}, [self, ctx](absl::StatusOr<RedisReply>) {
      if (ctx == self->ctx_) self->ping_outstanding_ = false;
    });
  }

  EventLoop* const loop_;
  const RedisEndpoint endpoint_;
  const RedisClientOptions options_;
  std::mt19937_64 rng_;

  redisAsyncContext* ctx_ = nullptr;
  bool started_ = false;
  bool ready_ = false;
  bool shutting_down_ = false;
  absl::Time last_reply_ = absl::InfinitePast();  // when the last reply arrived
  bool ping_outstanding_ = false;
  int attempt_ = 0;
  std::string last_error_ = "not connected yet";
  event* reconnect_timer_ = nullptr;
  event* connect_timer_ = nullptr;
  event* ping_timer_ = nullptr;
  const timeval* command_timeout_ = nullptr;
  std::atomic<bool> healthy_{false};
};

absl::StatusOr<std::unique_ptr<RedisClient>> RedisClient::Create(
    EventLoop* loop, RedisClientOptions options) {
  if (loop == nullptr) return absl::InvalidArgumentError("no event loop");
  auto endpoint = ParseRedisUri(options.uri);
  if (!endpoint.ok()) return endpoint.status();
  if (!options.password.empty()) endpoint->password = options.password;
  for (absl::Duration d : {options.connect_timeout, options.command_timeout,
                           options.initial_backoff, options.max_backoff}) {
    if (d <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          "Redis timeouts and backoffs must be positive");
    }
  }
  auto impl =
      std::make_shared<Impl>(loop, *std::move(endpoint), std::move(options));
  if (loop->InLoopThread()) {
    impl->Start();
  } else {
    loop->Post([impl] { impl->Start(); });
  }
  return std::unique_ptr<RedisClient>(new RedisClient(loop, std::move(impl)));
}

RedisClient::~RedisClient() {
  if (loop_->InLoopThread()) {
    // Maybe inside one of hiredis's callbacks, where its context must not be
    // freed: shut down on the next turn; the closure keeps Impl alive.
    loop_->Post([impl = impl_] { impl->Shutdown(); });
    return;
  }
  auto done = std::make_shared<absl::Notification>();
  loop_->Post([impl = impl_, done] {
    impl->Shutdown();
    done->Notify();
  });
  // Bounded, so a loop stopped too early cannot hang the process; ~Impl then
  // cleans up on whichever thread drops the last reference.
  done->WaitForNotificationWithTimeout(absl::Seconds(10));
}

void RedisClient::Command(std::vector<std::string> args, Callback done) {
  if (loop_->InLoopThread()) {
    impl_->Send(std::move(args), std::move(done));
    return;
  }
  loop_->Post(
      [impl = impl_, args = std::move(args), done = std::move(done)]() mutable {
        impl->Send(std::move(args), std::move(done));
      });
}

bool RedisClient::Healthy() const { return impl_->healthy(); }

}  // namespace payorch::cache
