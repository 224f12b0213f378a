#ifndef PAYORCH_CACHE_REDIS_CLUSTER_H_
#define PAYORCH_CACHE_REDIS_CLUSTER_H_

// Redis Cluster routing for RedisClient, the smallest faithful piece of a
// Cluster client that hiredis 0.14 lacks (cache/README.md "Redis Cluster"):
// key slots, the slot map from CLUSTER SLOTS, and RedisClient::Impl, which
// sends each command to the primary that owns its slot and follows MOVED and
// ASK. A single server is the same router with one node and no slot map.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cache/redis_client.h"
#include "cache/redis_node.h"
#include "common/event_loop.h"

namespace payorch::cache {

inline constexpr int kClusterSlots = 16384;

// CRC16-XMODEM of the key's hash tag (the part between the first '{' and the
// next '}', when that is not empty), else of the whole key, modulo 16384.
int KeySlot(absl::string_view key);

// A short hash tag whose slot is `slot` (0 <= slot < kClusterSlots): the
// first decimal string "0", "1", ... with that slot, found once per process
// (a brute-force pass over ~200k strings) and kept. A key tagged with it,
// "prefix:{<tag>}", lives on `slot`.
const std::string& SlotTag(int slot);

// The key a command is routed by: the first key of EVAL, EVALSHA, FCALL
// (and their _RO forms); none for commands without keys (PING, WAIT,
// SCRIPT, CLUSTER, INFO, ...); else args[1].
std::optional<std::string> RoutingKey(const std::vector<std::string>& args);

// One slot range of CLUSTER SLOTS with its primary and live replicas.
struct SlotRange {
  int first = 0;
  int last = 0;
  std::string primary;  // host:port
  int replicas = 0;
};

// Parses a CLUSTER SLOTS reply. An empty host in it means "the node you
// asked" (`asked_host`).
absl::StatusOr<std::vector<SlotRange>> ParseClusterSlots(
    const RedisReply& reply, const std::string& asked_host);

// A redirect error reply: "MOVED <slot> <host:port>" or "ASK ...".
struct Redirect {
  bool ask = false;
  int slot = 0;
  std::string address;
};
std::optional<Redirect> ParseRedirect(const RedisReply& reply);

// The router. Everything runs on the loop thread except healthy().
class RedisClient::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(EventLoop* loop, RedisTarget target, RedisClientOptions options);
  ~Impl();

  void Start();
  // `key`: route by this key (Cluster mode); nullopt: any primary.
  void Send(std::optional<std::string> key, std::vector<std::string> args,
            Callback done);
  void SendThenWait(std::vector<std::string> args, ReplicationWait wait,
                    absl::AnyInvocable<bool(const RedisReply&) const> wait_if,
                    Callback done);
  void Shutdown();
  bool healthy() const;
  // One slot per primary (Cluster: the first slot of each distinct primary
  // in the slot map; single node: {0}). Send() routed by a key on one of
  // these slots reaches each primary once.
  std::vector<int> PrimarySlots() const;

 private:
  struct Request;

  void Dispatch(std::unique_ptr<Request> request);
  void OnReply(std::unique_ptr<Request> request, RedisNode* node,
               absl::StatusOr<RedisReply> reply);
  void Retry(std::unique_ptr<Request> request, absl::Duration delay);
  void Wait(RedisNode* node, ReplicationWait wait, RedisReply reply,
            Callback done);
  RedisNode* NodeFor(const std::string& address);
  RedisNode* AnyNode();
  void RefreshSoon();
  void Refresh();
  void ApplySlots(const std::vector<SlotRange>& ranges);
  void UpdateHealth();
  static void OnRefreshTimer(int, short, void* arg);

  EventLoop* const loop_;
  const RedisTarget target_;
  const RedisClientOptions options_;
  absl::flat_hash_map<std::string, std::unique_ptr<RedisNode>> nodes_;
  // Cluster mode: the primary of each slot (nullptr: not known/served).
  std::vector<RedisNode*> slots_;
  RedisNode* single_ = nullptr;  // single-node mode: the only node
  std::mt19937_64 rng_;
  bool map_loaded_ = false;
  bool refreshing_ = false;
  absl::Time last_refresh_ = absl::InfinitePast();
  size_t next_seed_ = 0;
  bool shutting_down_ = false;
  EventPtr refresh_timer_;
  std::atomic<bool> map_healthy_{false};
};

}  // namespace payorch::cache

#endif  // PAYORCH_CACHE_REDIS_CLUSTER_H_
