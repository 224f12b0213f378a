#ifndef PAYORCH_CACHE_REDIS_NODE_H_
#define PAYORCH_CACHE_REDIS_NODE_H_

// One multiplexed hiredis connection to one Redis server, on the EventLoop
// thread: handshake (AUTH, SELECT, PING), per-command timeout, reconnection
// with backoff, an idle ROLE probe. Internal to cache/: RedisClient routes
// commands to one of these (single node) or to one per primary (Cluster).
// Every method must be called on the loop thread.

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "cache/hiredis_handles.h"
#include "cache/redis_client.h"
#include "common/event_loop.h"

struct redisAsyncContext;

namespace payorch::cache {

class RedisNode {
 public:
  using Callback = RedisClient::Callback;

  RedisNode(EventLoop* loop, RedisEndpoint endpoint,
            const RedisClientOptions& options);
  // Shuts down (pending commands fail with kUnavailable).
  ~RedisNode();

  RedisNode(const RedisNode&) = delete;
  RedisNode& operator=(const RedisNode&) = delete;

  // Starts connecting. Once, before Send().
  void Start();
  // As RedisClient::Command, on this connection. Fails at once with
  // kUnavailable while disconnected (no queueing behind an outage).
  void Send(std::vector<std::string> args, Callback done);
  // Closes everything; pending commands fail with kUnavailable. Idempotent.
  // Not from inside this node's own reply callback.
  void Shutdown();

  // Connected and handshaken. Any thread.
  bool healthy() const { return healthy_.load(std::memory_order_acquire); }
  // Connected replicas, from the last ROLE reply (-1: not known yet).
  int replicas() const { return replicas_; }
  // host:port
  const std::string& address() const { return address_; }

 private:
  struct Pending;

  void Connect();
  void Probe();
  void Drop(const std::string& why);
  void SetDown(const std::string& why);
  void ScheduleReconnect();
  static void OnConnect(const redisAsyncContext* ac, int status);
  static void OnDisconnect(const redisAsyncContext* ac, int status);
  static void OnReply(redisAsyncContext* ac, void* r, void* privdata);
  static void OnCommandTimeout(int, short, void* arg);
  static void OnReconnectTimer(int, short, void* arg);
  static void OnConnectTimeout(int, short, void* arg);
  static void OnPingTimer(int, short, void* arg);

  EventLoop* const loop_;
  const RedisEndpoint endpoint_;
  const RedisClientOptions options_;
  const std::string address_;
  std::mt19937_64 rng_;

  redisAsyncContext* ctx_ = nullptr;
  bool started_ = false;
  bool ready_ = false;
  bool shutting_down_ = false;
  absl::Time last_reply_ = absl::InfinitePast();  // when the last reply arrived
  bool ping_outstanding_ = false;
  int attempt_ = 0;
  int replicas_ = -1;
  std::string last_error_ = "not connected yet";
  EventPtr reconnect_timer_;
  EventPtr connect_timer_;
  EventPtr ping_timer_;
  const timeval* command_timeout_ = nullptr;
  std::atomic<bool> healthy_{false};
};

}  // namespace payorch::cache

#endif  // PAYORCH_CACHE_REDIS_NODE_H_
