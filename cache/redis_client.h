#ifndef PAYORCH_CACHE_REDIS_CLIENT_H_
#define PAYORCH_CACHE_REDIS_CLIENT_H_

// A small, safe wrapper over hiredis's asynchronous API on payorch's
// EventLoop: one multiplexed connection to one Redis primary, pipelined
// commands, a per-command timeout (hiredis 0.14 has none), reconnection with
// exponential backoff and jitter, and a Healthy() flag for readiness.
//
// Threading: every hiredis call happens on the loop thread. Public methods may
// be called from any thread; they Post() to the loop (or run inline when
// already on it). Completion callbacks run on the loop thread, exactly once.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/event_loop.h"

namespace payorch::cache {

// Where to connect: redis://[[user]:password@]host[:port][/db].
struct RedisEndpoint {
  std::string host;
  int port = 6379;
  std::string user;      // Redis 6 ACL user; empty: AUTH <password> only
  std::string password;  // empty: no AUTH
  int db = 0;
};

// Parses a redis:// URI (the password may be percent-encoded). kInvalidArgument
// on anything else, including rediss:// (hiredis 0.14 has no TLS).
absl::StatusOr<RedisEndpoint> ParseRedisUri(const std::string& uri);

struct RedisClientOptions {
  std::string uri = "redis://127.0.0.1:6379";
  // When set, replaces the URI's password (so it can come from a mounted
  // Secret file instead of a flag).
  std::string password;
  // TCP connect plus AUTH/SELECT/PING handshake.
  absl::Duration connect_timeout = absl::Milliseconds(500);
  // From a command being sent to its reply. A command that times out fails
  // with kUnavailable AND drops the connection (Redis answers in order, so
  // every later reply on it would wait as well); it is then re-established.
  absl::Duration command_timeout = absl::Milliseconds(500);
  // Reconnect delays: initial_backoff * 2^attempt, capped at max_backoff, each
  // drawn uniformly from [d/2, d] so replicas do not reconnect in lockstep.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  // An idle connection is PINGed this often so Healthy() notices a dead or
  // hung server without traffic. Zero disables.
  absl::Duration ping_interval = absl::Seconds(1);
};

// One reply, copied out of hiredis. Error replies (e.g. "NOSCRIPT ...") are
// replies, not failed statuses: the caller decides what they mean.
struct RedisReply {
  enum class Type { kNil, kString, kStatus, kInteger, kArray, kError };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError (binary-safe)
  int64_t integer = 0;
  std::vector<RedisReply> elements;

  bool is_error() const { return type == Type::kError; }
};

class RedisClient {
 public:
  using Callback = absl::AnyInvocable<void(absl::StatusOr<RedisReply>) &&>;

  // Validates the URI and starts connecting in the background; it does not
  // wait for Redis (a store that is down at start comes up later, and
  // Healthy() says so meanwhile). `loop` must outlive the client.
  static absl::StatusOr<std::unique_ptr<RedisClient>> Create(
      EventLoop* loop, RedisClientOptions options);

  // Closes the connection; commands still pending fail with kUnavailable
  // (on the loop thread). From another thread, blocks until the loop thread
  // has done so; on the loop thread (even inside a callback), that happens on
  // the loop's next turn. The loop must still be running.
  ~RedisClient();

  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Sends one command, e.g. {"EVALSHA", sha, "1", key, arg}. Arguments are
  // sent length-prefixed (hiredis's argv form, the same as "%b"), so they may
  // hold any bytes. `done` gets the reply, or kUnavailable when Redis is not
  // connected, the connection is lost before the reply, or command_timeout
  // passes (the command may or may not have run). When called on the loop
  // thread, `done` may run before Command() returns.
  void Command(std::vector<std::string> args, Callback done);

  // True from a completed handshake until the connection is lost or a
  // command (or PING) times out. Any thread.
  bool Healthy() const;

  class Impl;

 private:
  RedisClient(EventLoop* loop, std::shared_ptr<Impl> impl)
      : loop_(loop), impl_(std::move(impl)) {}
  EventLoop* loop_;
  std::shared_ptr<Impl> impl_;
};

}  // namespace payorch::cache

#endif  // PAYORCH_CACHE_REDIS_CLIENT_H_
