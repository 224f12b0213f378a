#ifndef PAYORCH_CACHE_REDIS_CLIENT_H_
#define PAYORCH_CACHE_REDIS_CLIENT_H_

// A small, safe wrapper over hiredis's asynchronous API on payorch's
// EventLoop, for one Redis primary or a Redis Cluster. Per primary: one
// multiplexed connection, pipelined commands, a per-command timeout (hiredis
// 0.14 has none), reconnection with exponential backoff and jitter. In Cluster
// mode each command goes to the primary that owns its key's slot (slot map
// from CLUSTER SLOTS; MOVED, ASK, TRYAGAIN and CLUSTERDOWN handled; the map is
// refreshed on redirects, connection loss and periodically). cache/README.md.
//
// Threading: every hiredis call happens on the loop thread. Public methods may
// be called from any thread; they Post() to the loop (or run inline when
// already on it). Completion callbacks run on the loop thread, exactly once.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/event_loop.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace payorch::cache {

// One finished command, for an observer (payorchd logs it at debug level).
struct RedisCommandRecord {
  std::string command;  // "evalsha", "eval", ... (lower case)
  std::string outcome;  // "ok", "error_reply", "unavailable"
  absl::Duration latency;
  std::string error;  // the failure or error reply, when there is one
};
using RedisCommandObserver = std::function<void(const RedisCommandRecord&)>;

// Where to connect: redis://[[user]:password@]host[:port][/db].
struct RedisEndpoint {
  std::string host;
  int port = 6379;
  std::string user;      // Redis 6 ACL user; empty: AUTH <password> only
  std::string password;  // empty: no AUTH
  int db = 0;
};

// Parses a redis:// URL (the password may be percent-encoded). kInvalidArgument
// on anything else, including rediss:// (hiredis 0.14 has no TLS).
absl::StatusOr<RedisEndpoint> ParseRedisUri(const std::string& uri);

// What a URL names: one server, or a Cluster reached through seed nodes.
struct RedisTarget {
  bool cluster = false;
  // One endpoint (redis://), or the seeds (redis+cluster://), all with the
  // URL's credentials. Cluster seeds have db 0 (a Cluster has no others).
  std::vector<RedisEndpoint> endpoints;
};

// redis://[[user]:password@]host[:port][/db], or
// redis+cluster://[[user]:password@]host[:port][,host[:port]...]: any reachable
// seed gives the slot map, so list a few of the Cluster's nodes.
absl::StatusOr<RedisTarget> ParseRedisUrl(const std::string& url);

struct RedisClientOptions {
  // redis://... or redis+cluster://... (ParseRedisUrl).
  std::string url = "redis://127.0.0.1:6379";
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
  // An idle connection is probed (ROLE, which also counts the primary's
  // replicas) this often so Healthy() notices a dead or hung server without
  // traffic. In Cluster mode the slot map is refreshed as often. Zero
  // disables both.
  absl::Duration ping_interval = absl::Seconds(1);
  // Optional: each Command() is timed into
  // payorch_redis_command_duration_seconds{command,outcome} of this registry
  // (which must outlive the client's last callback).
  prometheus::Registry* metrics = nullptr;
  // Optional: called for each finished Command() on the loop thread, under
  // the trace of the caller that sent it (common/trace_context.h).
  RedisCommandObserver observer;
};

// WAIT after a write: how many replicas must confirm it, and for how long to
// wait (less than command_timeout).
struct ReplicationWait {
  // -1: one when the primary has a connected replica (ROLE / CLUSTER SLOTS),
  // else none. 0: never wait.
  int replicas = -1;
  absl::Duration timeout = absl::Milliseconds(200);
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
  // thread, `done` may run before Command() returns. `done` runs under the
  // trace current at the call.
  //
  // In Cluster mode the command goes to the primary of its first key's slot
  // (RoutingKey() in cache/redis_cluster.h: args[1], or the first key of
  // EVAL/EVALSHA/FCALL; keyless commands go to any primary). Redirects
  // (MOVED, ASK) and refusals that mean nothing ran (TRYAGAIN, CLUSTERDOWN)
  // are retried a bounded number of times; if they persist, `done` gets that
  // error reply. Every key of one command must share a slot (hash tags).
  void Command(std::vector<std::string> args, Callback done);

  // As Command(), routed by `key` instead of the command's own first key.
  void CommandForKey(std::string key, std::vector<std::string> args,
                     Callback done);

  // One slot per primary, for commands that must reach every primary (SCAN):
  // route each with CommandForKey() by a key tagged SlotTag(slot)
  // (cache/redis_cluster.h). Single node: {0}. Cluster: the primaries of the
  // current slot map (none before it is loaded; a primary that is down is
  // listed, and its commands fail). `done` runs on the loop thread.
  void PrimarySlots(absl::AnyInvocable<void(std::vector<int>) &&> done);

  // As Command(); then, when the reply is not an error and `wait_if(reply)`
  // holds, sends WAIT on the same connection (so it covers this command's
  // writes) and answers `done` with the reply only if enough replicas
  // confirmed. Otherwise `done` gets kUnavailable: the command WAS applied
  // on the primary but may be lost if it fails now.
  void CommandThenWait(
      std::vector<std::string> args, ReplicationWait wait,
      absl::AnyInvocable<bool(const RedisReply&) const> wait_if, Callback done);

  // True while Redis can take commands: single node, from a completed
  // handshake until the connection is lost or a command (or probe) times
  // out; Cluster, while the slot map is known and at least one primary is
  // connected (a shard that is down fails only its own keys). Any thread.
  bool Healthy() const;

  class Impl;
  class Instrumentation;

 private:
  RedisClient(EventLoop* loop, std::shared_ptr<Impl> impl,
              std::shared_ptr<const Instrumentation> instrumentation)
      : loop_(loop),
        impl_(std::move(impl)),
        instrumentation_(std::move(instrumentation)) {}
  void Post(absl::AnyInvocable<void()> fn);
  // `done` timed into the metrics, told to the observer, and bound to the
  // current trace.
  Callback Instrument(const std::vector<std::string>& args,
                      Callback done) const;
  EventLoop* loop_;
  std::shared_ptr<Impl> impl_;
  // Shared with commands' callbacks, which may outlive the client.
  std::shared_ptr<const Instrumentation> instrumentation_;
};

}  // namespace payorch::cache

#endif  // PAYORCH_CACHE_REDIS_CLIENT_H_
