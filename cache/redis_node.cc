#include "cache/redis_node.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

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

// ROLE on a primary: {"master", offset, {{ip, port, offset}...}}. -1 for a
// replica or an unexpected answer.
int ReplicasFromRole(const RedisReply& reply) {
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() < 3 ||
      reply.elements[0].str != "master" ||
      reply.elements[2].type != RedisReply::Type::kArray) {
    return -1;
  }
  return static_cast<int>(reply.elements[2].elements.size());
}

void Log(const std::string& message) {
  std::fprintf(stderr, "payorch: redis: %s\n", message.c_str());
}

}  // namespace

// One command in flight. Owned by hiredis's callback list: OnReply runs
// exactly once for every accepted command (with NULL when the connection is
// freed) and deletes it. A timeout answers the caller early and marks it.
struct RedisNode::Pending {
  RedisNode* node;
  redisAsyncContext* ctx;
  EventPtr timer;
  Callback done;
  bool answered = false;
  int extensions = 0;  // times the timeout was extended (OnCommandTimeout)
};

// Connection states:
//   ctx_ == nullptr                 disconnected (a reconnect timer may run)
//   ctx_ != nullptr && !ready_      connecting: TCP + AUTH/SELECT/PING sent
//   ctx_ != nullptr && ready_       connected; healthy()
// Commands are written to hiredis while connecting (they queue behind the
// handshake) or connected; while disconnected they fail at once (fail closed,
// no queueing behind an outage).
RedisNode::RedisNode(EventLoop* loop, RedisEndpoint endpoint,
                     const RedisClientOptions& options)
    : loop_(loop),
      endpoint_(std::move(endpoint)),
      options_(options),
      address_(absl::StrCat(endpoint_.host, ":", endpoint_.port)),
      rng_(std::random_device{}()) {}

RedisNode::~RedisNode() { Shutdown(); }

void RedisNode::Start() {
  event_base* base = loop_->base();
  reconnect_timer_.reset(evtimer_new(base, &RedisNode::OnReconnectTimer, this));
  connect_timer_.reset(evtimer_new(base, &RedisNode::OnConnectTimeout, this));
  if (options_.ping_interval > absl::ZeroDuration()) {
    ping_timer_.reset(
        event_new(base, -1, EV_PERSIST, &RedisNode::OnPingTimer, this));
    timeval tv = absl::ToTimeval(options_.ping_interval);
    event_add(ping_timer_.get(), &tv);
  }
  // Every command shares one timeout, so libevent can keep their timers in
  // a queue instead of its heap (O(1) per command).
  timeval tv = absl::ToTimeval(options_.command_timeout);
  command_timeout_ = event_base_init_common_timeout(base, &tv);
  started_ = true;
  Connect();
}

void RedisNode::Send(std::vector<std::string> args, Callback done) {
  if (shutting_down_ || !started_) {
    std::move(done)(absl::UnavailableError("Redis client is shut down"));
    return;
  }
  if (ctx_ == nullptr) {
    std::move(done)(absl::UnavailableError(
        absl::StrCat("Redis ", address_, " is not connected: ", last_error_)));
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
  auto* pending = new Pending{this, ctx_, nullptr, std::move(done)};
  if (redisAsyncCommandArgv(ctx_, &RedisNode::OnReply, pending,
                            static_cast<int>(argv.size()), argv.data(),
                            lens.data()) != REDIS_OK) {
    Callback cb = std::move(pending->done);
    delete pending;
    std::move(cb)(absl::UnavailableError("Redis connection is closing"));
    return;
  }
  pending->timer.reset(
      evtimer_new(loop_->base(), &RedisNode::OnCommandTimeout, pending));
  evtimer_add(pending->timer.get(), command_timeout_);
}

void RedisNode::Shutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  healthy_.store(false, std::memory_order_release);
  reconnect_timer_.reset();
  connect_timer_.reset();
  ping_timer_.reset();
  if (ctx_ != nullptr) {
    redisAsyncContext* ctx = ctx_;
    ctx_ = nullptr;
    redisAsyncFree(ctx);  // runs every pending callback with a NULL reply
  }
}

void RedisNode::Connect() {
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
  redisAsyncSetConnectCallback(ctx, &RedisNode::OnConnect);
  redisAsyncSetDisconnectCallback(ctx, &RedisNode::OnDisconnect);
  redisEnableKeepAlive(&ctx->c);
  ctx_ = ctx;
  timeval tv = absl::ToTimeval(options_.connect_timeout);
  evtimer_add(connect_timer_.get(), &tv);

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
    evtimer_del(connect_timer_.get());
    healthy_.store(true, std::memory_order_release);
    Log(absl::StrCat("connected to ", address_));
    last_error_.clear();
  });
  Probe();
}

// ROLE: a liveness probe that also counts the primary's connected replicas
// (for WAIT). An ACL user without ROLE just leaves the count unknown.
void RedisNode::Probe() {
  ping_outstanding_ = true;
  redisAsyncContext* ctx = ctx_;
  Send({"ROLE"}, [this, ctx](absl::StatusOr<RedisReply> reply) {
    if (ctx != ctx_) return;
    ping_outstanding_ = false;
    if (reply.ok()) replicas_ = ReplicasFromRole(*reply);
  });
}

// Forgets the current connection and schedules a new one. Safe inside a
// command callback (hiredis then defers the free), not inside OnConnect.
void RedisNode::Drop(const std::string& why) {
  if (ctx_ == nullptr) return;
  redisAsyncContext* ctx = ctx_;
  ctx_ = nullptr;
  SetDown(why);
  redisAsyncFree(ctx);  // pending callbacks run now with NULL replies
  ScheduleReconnect();
}

// Marks the connection gone (the context is being freed by whoever called).
void RedisNode::SetDown(const std::string& why) {
  const bool was_ready = ready_;
  ready_ = false;
  ping_outstanding_ = false;
  healthy_.store(false, std::memory_order_release);
  if (connect_timer_ != nullptr) evtimer_del(connect_timer_.get());
  if (was_ready || last_error_ != why) {
    Log(absl::StrCat(was_ready ? "connection lost: " : "cannot connect: ",
                     address_, ": ", why));
  }
  last_error_ = why;
}

void RedisNode::ScheduleReconnect() {
  if (shutting_down_ || reconnect_timer_ == nullptr ||
      evtimer_pending(reconnect_timer_.get(), nullptr)) {
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
  evtimer_add(reconnect_timer_.get(), &tv);
}

void RedisNode::OnConnect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<RedisNode*>(ac->data);
  if (ac != self->ctx_ || status == REDIS_OK) return;  // OK: await PONG
  // hiredis frees `ac` right after this returns (and fails its commands).
  self->ctx_ = nullptr;
  self->SetDown(ac->errstr);
  self->ScheduleReconnect();
}

void RedisNode::OnDisconnect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<RedisNode*>(ac->data);
  if (ac != self->ctx_) return;  // we dropped it ourselves
  self->ctx_ = nullptr;
  self->SetDown(status == REDIS_OK ? std::string("closed")
                                   : std::string(ac->errstr));
  self->ScheduleReconnect();
}

void RedisNode::OnReply(redisAsyncContext* ac, void* r, void* privdata) {
  std::unique_ptr<Pending> pending(static_cast<Pending*>(privdata));
  RedisNode* self = pending->node;
  redisAsyncContext* ctx = pending->ctx;
  pending->timer.reset();
  if (pending->answered) return;
  Callback done = std::move(pending->done);
  pending.reset();
  if (r == nullptr) {
    // hiredis fails pending commands before it reports the disconnect, so
    // its own error text is the fresher one.
    std::move(done)(absl::UnavailableError(absl::StrCat(
        "Redis connection to ", self->address_, " lost before the reply: ",
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

void RedisNode::OnCommandTimeout(int, short, void* arg) {
  auto* pending = static_cast<Pending*>(arg);
  RedisNode* self = pending->node;
  // Replies still arriving within the timeout means a backlog (a busy loop
  // thread, a burst), not a stuck server: give the command more time, up to
  // kMaxExtensions timeouts, instead of failing everything in the pipe.
  constexpr int kMaxExtensions = 3;
  if (pending->ctx == self->ctx_ && pending->extensions < kMaxExtensions &&
      absl::Now() - self->last_reply_ < self->options_.command_timeout) {
    ++pending->extensions;
    evtimer_add(pending->timer.get(), self->command_timeout_);
    return;
  }
  pending->timer.reset();
  pending->answered = true;
  Callback done = std::move(pending->done);
  const std::string why = absl::StrCat(
      "no reply within ", absl::FormatDuration(self->options_.command_timeout));
  // Replies come in order, so everything behind this command is stuck as
  // well: drop the connection (which deletes `pending`) and start over.
  if (pending->ctx == self->ctx_) self->Drop(why);
  std::move(done)(absl::UnavailableError(
      absl::StrCat("Redis command timed out (", why,
                   "); it may or may not have been applied")));
}

void RedisNode::OnReconnectTimer(int, short, void* arg) {
  static_cast<RedisNode*>(arg)->Connect();
}

void RedisNode::OnConnectTimeout(int, short, void* arg) {
  auto* self = static_cast<RedisNode*>(arg);
  if (self->ctx_ != nullptr && !self->ready_) {
    self->Drop(
        absl::StrCat("connect timed out after ",
                     absl::FormatDuration(self->options_.connect_timeout)));
  }
}

void RedisNode::OnPingTimer(int, short, void* arg) {
  auto* self = static_cast<RedisNode*>(arg);
  if (!self->ready_ || self->ping_outstanding_) return;
  self->Probe();
}

}  // namespace payorch::cache
