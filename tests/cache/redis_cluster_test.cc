// RedisClient and RedisIdempotencyStore on a real 6-node Redis Cluster
// (3 primaries, 3 replicas, tests/testing/redis_server.h): the conformance
// suite, routing over every primary, scripts per node, resharding and
// failover under load, a whole shard down, and WAIT. Plus the pure pieces
// (key slots, redirects, URLs) against known values.

#include "cache/redis_cluster.h"

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cache/redis_client.h"
#include "cache/redis_idempotency_store.h"
#include "cache/unsettled_index.h"
#include "common/errors.h"
#include "common/event_loop.h"
#include "gtest/gtest.h"
#include "tests/cache/idempotency_store_conformance.h"
#include "tests/testing/redis_server.h"

namespace payorch::cache {
namespace {

using ::payorch::testing::RedisCluster;

std::unique_ptr<RedisCluster> StartCluster() {
  auto cluster = RedisCluster::Start();
  if (!cluster.ok()) {
    std::fprintf(stderr, "cannot start a Redis Cluster: %s\n",
                 cluster.status().ToString().c_str());
    std::abort();
  }
  return *std::move(cluster);
}

// One cluster for the tests that leave it intact (fresh keys each).
RedisCluster& SharedCluster() {
  static std::unique_ptr<RedisCluster> cluster = StartCluster();
  return *cluster;
}

std::unique_ptr<EventLoop> StartLoop() {
  auto loop = EventLoop::Start("redis-cluster-test");
  EXPECT_TRUE(loop.ok()) << loop.status();
  absl::Notification running;
  (*loop)->Post([&running] { running.Notify(); });
  running.WaitForNotification();
  return *std::move(loop);
}

template <typename Pred>
bool WaitFor(Pred pred, absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!pred()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

RedisIdempotencyStoreOptions ClusterOptions(const std::string& url) {
  RedisIdempotencyStoreOptions options;
  options.client.url = url;
  options.client.command_timeout = absl::Milliseconds(500);
  options.client.connect_timeout = absl::Milliseconds(300);
  options.client.initial_backoff = absl::Milliseconds(50);
  options.client.max_backoff = absl::Milliseconds(400);
  options.client.ping_interval = absl::Milliseconds(200);
  options.unavailable_retry_delay = absl::Milliseconds(700);
  return options;
}

std::unique_ptr<RedisIdempotencyStore> MakeStore(
    EventLoop* loop, const RedisIdempotencyStoreOptions& options) {
  auto store = RedisIdempotencyStore::Create(loop, options);
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return nullptr;
  EXPECT_TRUE(WaitFor([&] { return (*store)->Healthy(); }));
  return *std::move(store);
}

// ---- Pure pieces -------------------------------------------------------

TEST(KeySlotTest, MatchesRedis) {
  EXPECT_EQ(KeySlot("user:1"), 10778);      // toolchain-verified against 7.0
  EXPECT_EQ(KeySlot("123456789"), 0x31C3);  // CRC16-XMODEM check value
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("user1000"));
  EXPECT_EQ(KeySlot("foo{}{bar}"), KeySlot("foo{}{bar}"));
  EXPECT_NE(KeySlot("foo{}{bar}"), KeySlot("bar"));  // empty tag: whole key
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), KeySlot("{bar"));
  EXPECT_EQ(KeySlot(""), 0);
  // A store key and the same trans_id's other keys share one slot.
  IdempotencyKey key{"checkout", "M1", "T1"};
  EXPECT_EQ(KeySlot(key.RedisKey()), KeySlot("{M1:T1}"));
  EXPECT_EQ(KeySlot(key.RedisKey()),
            KeySlot(IdempotencyKey{"charge", "M1", "T1"}.RedisKey()));
}

TEST(KeySlotTest, AgreesWithTheServer) {
  RedisCluster& cluster = SharedCluster();
  for (const char* key :
       {"a", "payorch:idem:checkout:{M1:T1}", "{x}y", "}{", "\xff\x00z"}) {
    auto slot = cluster.node(0).Command({"CLUSTER", "KEYSLOT", key});
    ASSERT_TRUE(slot.ok()) << slot.status();
    EXPECT_EQ(*slot, std::to_string(KeySlot(key))) << key;
  }
}

TEST(RoutingKeyTest, FirstKeyOfEachForm) {
  using V = std::vector<std::string>;
  EXPECT_EQ(RoutingKey(V{"GET", "k"}), "k");
  EXPECT_EQ(RoutingKey(V{"evalsha", "sha", "2", "k1", "k2", "a"}), "k1");
  EXPECT_EQ(RoutingKey(V{"EVAL", "body", "0", "a"}), std::nullopt);
  EXPECT_EQ(RoutingKey(V{"FCALL", "f", "1", "k"}), "k");
  EXPECT_EQ(RoutingKey(V{"WAIT", "1", "100"}), std::nullopt);
  EXPECT_EQ(RoutingKey(V{"SCRIPT", "FLUSH"}), std::nullopt);
  EXPECT_EQ(RoutingKey(V{"PING"}), std::nullopt);
}

TEST(ParseRedirectTest, MovedAndAsk) {
  const auto error = [](const char* text) {
    RedisReply reply;
    reply.type = RedisReply::Type::kError;
    reply.str = text;
    return reply;
  };
  RedisReply moved = error("MOVED 3999 127.0.0.1:6381");
  auto r = ParseRedirect(moved);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->ask);
  EXPECT_EQ(r->slot, 3999);
  EXPECT_EQ(r->address, "127.0.0.1:6381");
  RedisReply ask = error("ASK 3999 10.0.0.2:7000");
  r = ParseRedirect(ask);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->ask);
  for (const char* text : {"MOVED", "MOVED x h:1", "MOVED 20000 h:1",
                           "MOVEDX 1 h:1", "ERR MOVED 1 h:1", "MOVED 1 :1"}) {
    EXPECT_FALSE(ParseRedirect(error(text)).has_value()) << text;
  }
  RedisReply not_error = error("MOVED 1 h:1");
  not_error.type = RedisReply::Type::kString;
  EXPECT_FALSE(ParseRedirect(not_error).has_value());
}

TEST(ParseRedisUrlTest, ClusterSeeds) {
  auto t = ParseRedisUrl("redis+cluster://:p%40ss@a:7000,b,[::1]:7002");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(t->cluster);
  ASSERT_EQ(t->endpoints.size(), 3u);
  EXPECT_EQ(t->endpoints[0].host, "a");
  EXPECT_EQ(t->endpoints[0].port, 7000);
  EXPECT_EQ(t->endpoints[1].port, 6379);
  EXPECT_EQ(t->endpoints[2].host, "::1");
  for (const auto& e : t->endpoints) EXPECT_EQ(e.password, "p@ss");
  t = ParseRedisUrl("redis://h:1/2");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->cluster);
  EXPECT_EQ(t->endpoints[0].db, 2);
  for (const char* url :
       {"redis+cluster://", "redis+cluster://:secret@a:1,",
        "redis+cluster://a:1/2", "redis+cluster://:secret@a:x",
        "redis+clusters://a:1"}) {
    auto bad = ParseRedisUrl(url);
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << url;
    EXPECT_EQ(bad.status().message().find("secret"), absl::string_view::npos);
  }
}

// ---- The conformance suite on the Cluster -----------------------------

class ClusterEnv {
 public:
  ClusterEnv() : loop_(StartLoop()) {
    store_ = MakeStore(loop_.get(), ClusterOptions(SharedCluster().url()));
  }
  ~ClusterEnv() {
    store_.reset();
    loop_.reset();
  }
  IdempotencyStore& store() { return *store_; }
  absl::Duration lease() const { return absl::Milliseconds(300); }
  void Advance(absl::Duration) {}
  absl::Duration TimeToLive(const IdempotencyKey& key) const {
    auto ms =
        SharedCluster().CommandForKey(key.RedisKey(), {"PTTL", key.RedisKey()});
    int64_t n = 0;
    if (!ms.ok() || !absl::SimpleAtoi(*ms, &n) || n < 0) {
      return absl::ZeroDuration();
    }
    return absl::Milliseconds(n);
  }
  absl::Duration retention() const { return kDefaultRecordRetention; }
  absl::Duration short_retention() const { return absl::Milliseconds(300); }
  absl::Duration real_lease_wait() const { return lease() * 2; }

 private:
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<RedisIdempotencyStore> store_;
};

INSTANTIATE_TYPED_TEST_SUITE_P(RedisCluster, IdempotencyStoreConformanceTest,
                               ClusterEnv);

// ---- Routing, scripts, WAIT -------------------------------------------

TEST(RedisClusterStoreTest, KeysSpreadOverEveryPrimaryInOneSlotEach) {
  RedisCluster& cluster = SharedCluster();
  auto loop = StartLoop();
  auto store = MakeStore(loop.get(), ClusterOptions(cluster.url()));
  std::set<int> primaries;
  for (int i = 0; i < 60; ++i) {
    const IdempotencyKey key = FreshKey("checkout", "M" + std::to_string(i));
    auto claim = BeginSync(*store, key, "fp", absl::Seconds(30));
    ASSERT_TRUE(claim.ok()) << claim.status();
    ASSERT_EQ(claim->outcome, Claim::Outcome::kAcquired);
    auto primary = cluster.PrimaryForKey(key.RedisKey());
    ASSERT_TRUE(primary.ok()) << primary.status();
    EXPECT_EQ(*cluster.node(*primary).Command({"EXISTS", key.RedisKey()}), "1");
    primaries.insert(*primary);
    ASSERT_TRUE(
        CompleteSync(*store, key, claim->owner_token, "out", absl::Hours(1))
            .ok());
  }
  EXPECT_EQ(primaries.size(), 3u);
  store.reset();
}

// The entries of one index, by record key, restricted to `merchant`.
std::set<std::string> IndexedFor(UnsettledIndex& index,
                                 const std::string& merchant) {
  std::promise<absl::StatusOr<UnsettledIndexes>> listed;
  index.List([&](absl::StatusOr<UnsettledIndexes> r) { listed.set_value(r); });
  auto found = listed.get_future().get();
  EXPECT_TRUE(found.ok()) << found.status();
  std::set<std::string> out;
  if (!found.ok()) return out;
  EXPECT_EQ(found->primaries, 3);
  EXPECT_EQ(found->failed, 0);
  for (const std::string& name : found->names) {
    std::promise<absl::StatusOr<UnsettledPage>> p;
    index.Scan(name, 0, 10000,
               [&](absl::StatusOr<UnsettledPage> r) { p.set_value(r); });
    auto page = p.get_future().get();
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok()) continue;
    for (const UnsettledEntry& e : page->entries) {
      if (e.key.merchant_id == merchant) out.insert(e.key.RedisKey());
    }
  }
  return out;
}

// Each claim's index entry is on its record's slot (hence primary), and
// List() finds the indexes on every primary.
TEST(RedisClusterStoreTest, TheUnsettledIndexIsOnEachRecordsSlot) {
  RedisCluster& cluster = SharedCluster();
  auto loop = StartLoop();
  auto store = MakeStore(loop.get(), ClusterOptions(cluster.url()));
  UnsettledIndex index(store->client());
  const std::string merchant = FreshKey("charge", "IDX").trans_id;
  std::set<std::string> want;
  std::vector<std::pair<IdempotencyKey, std::string>> claims;
  for (int i = 0; i < 30; ++i) {
    const IdempotencyKey key{"charge", merchant, "T" + std::to_string(i)};
    auto claim = BeginSync(*store, key, "fp", absl::Seconds(30));
    ASSERT_TRUE(claim.ok()) << claim.status();
    ASSERT_EQ(claim->outcome, Claim::Outcome::kAcquired);
    const std::string name = UnsettledIndexName(key);
    auto record_primary = cluster.PrimaryForKey(key.RedisKey());
    auto index_primary = cluster.PrimaryForKey(UnsettledSinceKey(name));
    ASSERT_TRUE(record_primary.ok() && index_primary.ok());
    EXPECT_EQ(*record_primary, *index_primary);
    auto score =
        cluster.node(*index_primary)
            .Command({"ZSCORE", UnsettledSinceKey(name), key.RedisKey()});
    ASSERT_TRUE(score.ok()) << score.status();
    EXPECT_NE(*score, "(nil)");
    want.insert(key.RedisKey());
    claims.emplace_back(key, claim->owner_token);
  }
  EXPECT_EQ(IndexedFor(index, merchant), want);
  for (const auto& [key, owner] : claims) {
    ASSERT_TRUE(CompleteSync(*store, key, owner, "out", absl::Hours(1)).ok());
  }
  EXPECT_TRUE(IndexedFor(index, merchant).empty());
  store.reset();
}

TEST(RedisClusterStoreTest, ScriptFlushOnOneNodeFallsBackToEvalThere) {
  RedisCluster& cluster = SharedCluster();
  auto loop = StartLoop();
  auto store = MakeStore(loop.get(), ClusterOptions(cluster.url()));
  const IdempotencyKey key = FreshKey();
  ASSERT_TRUE(BeginSync(*store, key, "fp", absl::Seconds(30)).ok());
  auto primary = cluster.PrimaryForKey(key.RedisKey());
  ASSERT_TRUE(primary.ok());
  ASSERT_TRUE(cluster.node(*primary).Command({"SCRIPT", "FLUSH"}).ok());
  auto again = BeginSync(*store, key, "fp", absl::Seconds(30));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->outcome, Claim::Outcome::kInProgress);
  store.reset();
}

TEST(RedisClusterClientTest, RoutesAnySingleSlotCommandAndScript) {
  RedisCluster& cluster = SharedCluster();
  auto loop = StartLoop();
  RedisClientOptions options = ClusterOptions(cluster.url()).client;
  auto client = RedisClient::Create(loop.get(), options);
  ASSERT_TRUE(client.ok());
  auto run = [&](std::vector<std::string> args) {
    absl::Notification done;
    absl::StatusOr<RedisReply> out;
    (*client)->Command(std::move(args), [&](absl::StatusOr<RedisReply> r) {
      out = std::move(r);
      done.Notify();
    });
    done.WaitForNotification();
    return out;
  };
  ASSERT_TRUE(WaitFor([&] { return (*client)->Healthy(); }));
  for (int i = 0; i < 30; ++i) {
    const std::string tag = "{idx" + std::to_string(i) + "}";
    auto set = run({"ZADD", tag + ":unsettled", "1", "member"});
    ASSERT_TRUE(set.ok() && !set->is_error()) << (set.ok() ? set->str : "");
    auto lua = run({"EVAL", "return redis.call('ZCARD', KEYS[1])", "1",
                    tag + ":unsettled"});
    ASSERT_TRUE(lua.ok());
    EXPECT_EQ(lua->integer, 1) << lua->str;
    auto cross = run({"EVAL", "return 1", "2", tag + "a", "{other}b"});
    ASSERT_TRUE(cross.ok());
    EXPECT_TRUE(cross->is_error());  // CROSSSLOT: the caller's mistake
  }
  auto ping = run({"PING"});
  ASSERT_TRUE(ping.ok());
  EXPECT_EQ(ping->str, "PONG");
  client->reset();
}

TEST(RedisClusterStoreTest, ClaimWaitsForAReplicaAndFailsClosedWithout) {
  auto cluster = StartCluster();
  auto loop = StartLoop();
  RedisIdempotencyStoreOptions options = ClusterOptions(cluster->url());
  options.replication.timeout = absl::Milliseconds(150);
  auto store = MakeStore(loop.get(), options);
  const IdempotencyKey key = FreshKey();
  auto claim = BeginSync(*store, key, "fp", absl::Seconds(30));
  ASSERT_TRUE(claim.ok()) << claim.status();
  auto primary = cluster->PrimaryForKey(key.RedisKey());
  ASSERT_TRUE(primary.ok());
  auto replica = cluster->ReplicaOf(*primary);
  ASSERT_TRUE(replica.ok()) << replica.status();
  // Confirmed: the replica already has the claim.
  EXPECT_EQ(*cluster->node(*replica).ReplicaCommand({"EXISTS", key.RedisKey()}),
            "1");

  // A replica that stops acknowledging: the claim is not confirmed, Begin
  // fails closed and the claim is released.
  ASSERT_TRUE(cluster->node(*replica).Pause().ok());
  IdempotencyKey same_shard;
  do {
    same_shard = FreshKey();
  } while (*cluster->PrimaryForKey(same_shard.RedisKey()) != *primary);
  auto refused = BeginSync(*store, same_shard, "fp", absl::Seconds(30));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(HasReason(refused.status(), Reason::kIdempotencyStoreUnavailable))
      << refused.status();
  EXPECT_TRUE(WaitFor([&] {
    return *cluster->node(*primary).Command(
               {"EXISTS", same_shard.RedisKey()}) == "0";
  }));
  // Replays need no WAIT: they wrote nothing.
  ASSERT_TRUE(
      CompleteSync(*store, key, claim->owner_token, "out", absl::Hours(1))
          .ok());
  auto replay = BeginSync(*store, key, "fp", absl::Seconds(30));
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->outcome, Claim::Outcome::kCompleted);
  ASSERT_TRUE(cluster->node(*replica).Resume().ok());
  store.reset();
}

// ---- Under load: resharding, failover, a shard down --------------------

// Clients that claim fresh trans_ids, complete them, and replay them, from
// a few threads, until stopped; then every key that completed is checked.
class Load {
 public:
  Load(IdempotencyStore* store, int threads) : store_(store) {
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, t] { Run(t); });
    }
  }
  ~Load() { Stop(); }

  void Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }
  int ops() const { return ops_.load(); }
  int retryable() const { return retryable_.load(); }  // UNAVAILABLE
  int other_errors() const { return other_.load(); }
  std::vector<std::string> first_errors() {
    absl::MutexLock lock(&mu_);
    return errors_;
  }
  // Claims whose trans_id was later claimed again as new (reconcile=false):
  // a lost claim, i.e. a possible duplicate create at the PSP.
  int LostClaims() {
    int lost = 0;
    for (const IdempotencyKey& key : Claimed()) {
      auto again = BeginSync(*store_, key, "fp", absl::Seconds(30));
      if (again.ok() && again->outcome == Claim::Outcome::kAcquired &&
          !again->reconcile) {
        ++lost;
      }
    }
    return lost;
  }
  std::vector<IdempotencyKey> Claimed() {
    absl::MutexLock lock(&mu_);
    return claimed_;
  }

 private:
  void Note(const absl::Status& status) {
    if (status.code() == absl::StatusCode::kUnavailable &&
        HasReason(status, Reason::kIdempotencyStoreUnavailable)) {
      ++retryable_;
      return;
    }
    ++other_;
    absl::MutexLock lock(&mu_);
    if (errors_.size() < 5) errors_.push_back(status.ToString());
  }

  void Run(int t) {
    for (int i = 0; !stop_.load(); ++i) {
      const IdempotencyKey key = FreshKey(
          "checkout", "M" + std::to_string(t) + "-" + std::to_string(i % 50));
      ++ops_;
      auto claim = BeginSync(*store_, key, "fp", absl::Seconds(30));
      if (!claim.ok()) {
        Note(claim.status());
        continue;
      }
      if (claim->outcome != Claim::Outcome::kAcquired || claim->reconcile) {
        Note(absl::InternalError("fresh key not acquired afresh"));
        continue;
      }
      {
        absl::MutexLock lock(&mu_);
        claimed_.push_back(key);
      }
      ++ops_;
      absl::Status done = CompleteSync(*store_, key, claim->owner_token,
                                       key.trans_id, absl::Hours(1));
      if (!done.ok()) {
        Note(done);
        continue;
      }
      ++ops_;
      auto replay = BeginSync(*store_, key, "fp", absl::Seconds(30));
      if (!replay.ok()) {
        Note(replay.status());
      } else if (replay->outcome != Claim::Outcome::kCompleted ||
                 replay->stored != key.trans_id) {
        Note(absl::InternalError("replay did not return the stored outcome"));
      }
    }
  }

  IdempotencyStore* const store_;
  std::atomic<bool> stop_{false};
  std::atomic<int> ops_{0}, retryable_{0}, other_{0};
  absl::Mutex mu_;
  std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
  std::vector<IdempotencyKey> claimed_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

// Fresh keys whose slot is served by node `primary`.
std::vector<IdempotencyKey> KeysOn(const RedisCluster& cluster, int primary,
                                   int n) {
  std::vector<IdempotencyKey> keys;
  while (static_cast<int>(keys.size()) < n) {
    IdempotencyKey key = FreshKey("checkout", "shard");
    auto owner = cluster.PrimaryForKey(key.RedisKey());
    if (owner.ok() && *owner == primary) keys.push_back(std::move(key));
  }
  return keys;
}

TEST(RedisClusterLoadTest, ReshardingUnderLoadLosesNothing) {
  auto cluster = StartCluster();
  auto loop = StartLoop();
  auto store = MakeStore(loop.get(), ClusterOptions(cluster->url()));
  Load load(store.get(), 4);
  ASSERT_TRUE(WaitFor([&] { return load.ops() > 200; }));
  // Move a third of node 0's slots to node 1, then some back to node 0 from
  // node 2: keys in flight follow MOVED and ASK.
  absl::Status moved = cluster->Reshard(0, 1, 1000);
  ASSERT_TRUE(moved.ok()) << moved;
  moved = cluster->Reshard(2, 0, 500);
  ASSERT_TRUE(moved.ok()) << moved;
  const int ops_at_end = load.ops();
  ASSERT_TRUE(WaitFor([&] { return load.ops() > ops_at_end + 200; }));
  load.Stop();
  std::printf("reshard: %d ops, %d retryable errors, %d other errors\n",
              load.ops(), load.retryable(), load.other_errors());
  EXPECT_EQ(load.other_errors(), 0)
      << ::testing::PrintToString(load.first_errors());
  // Redirects are followed, not surfaced: no retryable errors either.
  EXPECT_EQ(load.retryable(), 0);
  EXPECT_EQ(load.LostClaims(), 0);
  store.reset();
}

TEST(RedisClusterLoadTest, FailoverUnderLoadRecoversWithoutRestart) {
  auto cluster = StartCluster();
  auto loop = StartLoop();
  auto store = MakeStore(loop.get(), ClusterOptions(cluster->url()));
  const std::vector<IdempotencyKey> probes = KeysOn(*cluster, 0, 200);
  auto replica = cluster->ReplicaOf(0);
  ASSERT_TRUE(replica.ok()) << replica.status();
  Load load(store.get(), 4);
  ASSERT_TRUE(WaitFor([&] { return load.ops() > 200; }));

  const absl::Time killed = absl::Now();
  ASSERT_TRUE(cluster->node(0).Stop(SIGKILL).ok());
  // The Cluster's own failover time: until the replica is a primary for the
  // shard's slots in the surviving nodes' view.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto owner = cluster->PrimaryForKey(probes[0].RedisKey());
        return owner.ok() && *owner == *replica;
      },
      absl::Seconds(15)));
  const absl::Time promoted = absl::Now();
  // payorch: until a claim on that shard succeeds again.
  size_t next = 1;
  absl::Time recovered = absl::InfiniteFuture();
  while (absl::Now() < promoted + absl::Seconds(10) && next < probes.size()) {
    if (BeginSync(*store, probes[next++], "fp", absl::Seconds(30)).ok()) {
      recovered = absl::Now();
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  const int ops_at_recovery = load.ops();
  ASSERT_TRUE(WaitFor([&] { return load.ops() > ops_at_recovery + 200; }));
  load.Stop();
  std::printf(
      "failover: cluster promoted the replica %.2f s after SIGKILL; payorch "
      "claimed on that shard again %.2f s after the promotion; %d ops, %d "
      "retryable errors, %d other errors\n",
      absl::ToDoubleSeconds(promoted - killed),
      absl::ToDoubleSeconds(recovered - promoted), load.ops(), load.retryable(),
      load.other_errors());
  EXPECT_LE(recovered - promoted, absl::Seconds(2));
  EXPECT_EQ(load.other_errors(), 0)
      << ::testing::PrintToString(load.first_errors());
  // Every claim was confirmed by the replica before it was reported (WAIT),
  // so the promoted replica has it: nothing is claimed twice as new.
  EXPECT_EQ(load.LostClaims(), 0);
  EXPECT_TRUE(store->Healthy());
  store.reset();
}

TEST(RedisClusterLoadTest, AWholeShardDownFailsOnlyItsKeys) {
  auto cluster = StartCluster();
  auto loop = StartLoop();
  auto store = MakeStore(loop.get(), ClusterOptions(cluster->url()));
  const std::vector<IdempotencyKey> down_keys = KeysOn(*cluster, 1, 20);
  std::vector<IdempotencyKey> up_keys = KeysOn(*cluster, 0, 10);
  for (const IdempotencyKey& k : KeysOn(*cluster, 2, 10)) up_keys.push_back(k);
  auto replica = cluster->ReplicaOf(1);
  ASSERT_TRUE(replica.ok());
  ASSERT_TRUE(cluster->node(*replica).Stop(SIGKILL).ok());
  ASSERT_TRUE(cluster->node(1).Stop(SIGKILL).ok());
  // Give the Cluster time to mark the shard failed; the others stay ok
  // (cluster-require-full-coverage no).
  ASSERT_TRUE(WaitFor(
      [&] {
        auto info = cluster->node(0).Command({"CLUSTER", "INFO"});
        return info.ok() && absl::StrContains(*info, "cluster_state:ok") &&
               !absl::StrContains(*info, "cluster_slots_fail:0\r");
      },
      absl::Seconds(15)))
      << *cluster->node(0).Command({"CLUSTER", "INFO"});
  for (const IdempotencyKey& key : up_keys) {
    auto claim = BeginSync(*store, key, "fp", absl::Seconds(30));
    ASSERT_TRUE(claim.ok()) << claim.status();
    EXPECT_EQ(claim->outcome, Claim::Outcome::kAcquired);
  }
  for (const IdempotencyKey& key : down_keys) {
    auto claim = BeginSync(*store, key, "fp", absl::Seconds(30));
    ASSERT_FALSE(claim.ok());
    EXPECT_EQ(claim.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_TRUE(HasReason(claim.status(), Reason::kIdempotencyStoreUnavailable))
        << claim.status();
  }
  EXPECT_TRUE(store->Healthy());  // readiness: the other shards serve
  store.reset();
}

}  // namespace
}  // namespace payorch::cache
