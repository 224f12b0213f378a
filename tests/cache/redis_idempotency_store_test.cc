#include "cache/redis_idempotency_store.h"

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cache/redis_client.h"
#include "common/errors.h"
#include "common/event_loop.h"
#include "gtest/gtest.h"
#include "tests/cache/idempotency_store_conformance.h"
#include "tests/testing/redis_server.h"

namespace payorch::cache {
namespace {

using ::payorch::testing::RedisServer;

// One redis-server for the tests that do not stop it (they use fresh keys).
// Killed by its destructor at exit (or by PR_SET_PDEATHSIG on a crash).
RedisServer& SharedServer() {
  static std::unique_ptr<RedisServer> server = [] {
    auto s = RedisServer::Start();
    if (!s.ok()) {
      std::fprintf(stderr, "cannot start redis-server: %s\n",
                   s.status().ToString().c_str());
      std::abort();
    }
    return *std::move(s);
  }();
  return *server;
}

// Waits until the loop thread is inside event_base_loop(): libevent clears a
// loopbreak requested before that, so destroying a just-started EventLoop can
// hang (reported to the lead; common/event_loop.cc).
std::unique_ptr<EventLoop> StartLoop() {
  auto loop = EventLoop::Start("redis-test");
  EXPECT_TRUE(loop.ok()) << loop.status();
  absl::Notification running;
  (*loop)->Post([&running] { running.Notify(); });
  running.WaitForNotification();
  return *std::move(loop);
}

// Polls `pred` every 10 ms for up to `timeout`.
template <typename Pred>
bool WaitFor(Pred pred, absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!pred()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

absl::Duration Pttl(const RedisServer& server, const IdempotencyKey& key) {
  auto ms = server.Command({"PTTL", key.RedisKey()});
  int64_t n = 0;
  if (!ms.ok() || !absl::SimpleAtoi(*ms, &n) || n < 0) {
    return absl::ZeroDuration();
  }
  return absl::Milliseconds(n);
}

// The Redis store against the shared server, with real time: a 300 ms lease.
class RedisEnv {
 public:
  RedisEnv() : loop_(StartLoop()) {
    RedisIdempotencyStoreOptions options;
    options.client.url = SharedServer().url();
    auto store = RedisIdempotencyStore::Create(loop_.get(), options);
    EXPECT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  ~RedisEnv() {
    store_.reset();  // before the loop it runs on
    loop_.reset();
  }
  IdempotencyStore& store() { return *store_; }
  absl::Duration lease() const { return absl::Milliseconds(300); }
  void Advance(absl::Duration) {}
  absl::Duration TimeToLive(const IdempotencyKey& key) const {
    return Pttl(SharedServer(), key);
  }
  absl::Duration retention() const { return kDefaultRecordRetention; }
  absl::Duration short_retention() const { return absl::Milliseconds(300); }
  absl::Duration real_lease_wait() const { return lease() * 2; }

 private:
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<RedisIdempotencyStore> store_;
};

INSTANTIATE_TYPED_TEST_SUITE_P(Redis, IdempotencyStoreConformanceTest,
                               RedisEnv);

// Options for tests that break Redis on purpose: short timeouts and backoff.
RedisIdempotencyStoreOptions FastFailOptions(const std::string& url) {
  RedisIdempotencyStoreOptions options;
  options.client.url = url;
  options.client.command_timeout = absl::Milliseconds(300);
  options.client.connect_timeout = absl::Milliseconds(300);
  options.client.initial_backoff = absl::Milliseconds(50);
  options.client.max_backoff = absl::Milliseconds(400);
  options.client.ping_interval = absl::Milliseconds(100);
  options.unavailable_retry_delay = absl::Milliseconds(700);
  return options;
}

void ExpectStoreUnavailable(const absl::Status& status) {
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_TRUE(HasReason(status, Reason::kIdempotencyStoreUnavailable))
      << status;
  EXPECT_EQ(RetryDelayOf(status), absl::Milliseconds(700)) << status;
}

TEST(RedisIdempotencyStoreTest, RecordIsOneHashWithOwnerLeaseAndRetention) {
  auto loop = StartLoop();
  RedisIdempotencyStoreOptions options;
  options.client.url = SharedServer().url();
  options.retention = absl::Minutes(10);
  auto store = RedisIdempotencyStore::Create(loop.get(), options);
  ASSERT_TRUE(store.ok()) << store.status();
  const IdempotencyKey key = FreshKey();
  auto claim = BeginSync(**store, key, "fp-1", absl::Seconds(30));
  ASSERT_TRUE(claim.ok()) << claim.status();
  auto type = SharedServer().Command({"TYPE", key.RedisKey()});
  ASSERT_TRUE(type.ok());
  EXPECT_EQ(*type, "hash");
  auto fields =
      SharedServer().Command({"HMGET", key.RedisKey(), "state", "fp", "owner"});
  ASSERT_TRUE(fields.ok());
  EXPECT_EQ(*fields, "INFLIGHT\nfp-1\n" + claim->owner_token);
  // The lease deadline is in Redis server time.
  auto lease_until =
      SharedServer().Command({"HGET", key.RedisKey(), "lease_until_ms"});
  auto now = SharedServer().Command({"TIME"});
  ASSERT_TRUE(lease_until.ok() && now.ok());
  int64_t until_ms = 0, now_s = 0;
  ASSERT_TRUE(absl::SimpleAtoi(*lease_until, &until_ms));
  ASSERT_TRUE(absl::SimpleAtoi(now->substr(0, now->find('\n')), &now_s));
  EXPECT_NEAR(static_cast<double>(until_ms - now_s * 1000), 30000.0, 2000.0);
  const absl::Duration ttl = Pttl(SharedServer(), key);
  EXPECT_GT(ttl, absl::Minutes(10) - absl::Seconds(5));
  EXPECT_LE(ttl, absl::Minutes(10));
  store->reset();
}

TEST(RedisIdempotencyStoreTest, ConcurrentBeginsFromTwoReplicasAcquireOnce) {
  // Two stores = two connections, as two payorchd replicas would have.
  auto loop_a = StartLoop();
  auto loop_b = StartLoop();
  RedisIdempotencyStoreOptions options;
  options.client.url = SharedServer().url();
  options.client.command_timeout = absl::Seconds(5);
  auto store_a = RedisIdempotencyStore::Create(loop_a.get(), options);
  auto store_b = RedisIdempotencyStore::Create(loop_b.get(), options);
  ASSERT_TRUE(store_a.ok() && store_b.ok());
  ASSERT_TRUE(
      WaitFor([&] { return (*store_a)->Healthy() && (*store_b)->Healthy(); }));

  const IdempotencyKey key = FreshKey();
  constexpr int kCalls = 200;
  absl::BlockingCounter pending(kCalls);
  std::atomic<int> acquired{0}, in_progress{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      IdempotencyStore& store = t % 2 == 0 ? **store_a : **store_b;
      for (int i = 0; i < kCalls / 4; ++i) {
        store.Begin(
            key, "fp", absl::Seconds(30), [&](absl::StatusOr<Claim> claim) {
              if (!claim.ok()) {
                ++other;
              } else if (claim->outcome == Claim::Outcome::kAcquired) {
                ++acquired;
              } else if (claim->outcome == Claim::Outcome::kInProgress) {
                ++in_progress;
              } else {
                ++other;
              }
              pending.DecrementCount();
            });
      }
    });
  }
  for (auto& t : threads) t.join();
  pending.Wait();
  EXPECT_EQ(acquired.load(), 1);
  EXPECT_EQ(in_progress.load(), kCalls - 1);
  EXPECT_EQ(other.load(), 0);
  store_a->reset();
  store_b->reset();
}

TEST(RedisIdempotencyStoreTest, OutageFailsClosedThenRecoversByItself) {
  auto server = RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  auto loop = StartLoop();
  auto store = RedisIdempotencyStore::Create(loop.get(),
                                             FastFailOptions((*server)->url()));
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(WaitFor([&] { return (*store)->Healthy(); }));
  ASSERT_TRUE(BeginSync(**store, FreshKey(), "fp", absl::Seconds(30)).ok());

  ASSERT_TRUE((*server)->Stop(SIGKILL).ok());
  // Promptly unhealthy (the connection drops, or the next PING fails).
  EXPECT_TRUE(WaitFor([&] { return !(*store)->Healthy(); }, absl::Seconds(2)));
  for (int i = 0; i < 3; ++i) {
    const absl::Time start = absl::Now();
    auto claim = BeginSync(**store, FreshKey(), "fp", absl::Seconds(30));
    const absl::Duration took = absl::Now() - start;
    ASSERT_FALSE(claim.ok());
    ExpectStoreUnavailable(claim.status());
    EXPECT_LT(took, absl::Milliseconds(300) + absl::Milliseconds(500));
  }
  absl::Status complete =
      CompleteSync(**store, FreshKey(), "owner", "x", absl::Hours(1));
  ExpectStoreUnavailable(complete);
  ExpectStoreUnavailable(MarkUnknownSync(**store, FreshKey(), "owner"));
  ExpectStoreUnavailable(ReleaseSync(**store, FreshKey(), "owner"));
  EXPECT_FALSE((*store)->Healthy());

  ASSERT_TRUE((*server)->Restart().ok());
  EXPECT_TRUE(WaitFor([&] { return (*store)->Healthy(); }));
  // Scripts are gone from the restarted server: EVALSHA falls back to EVAL.
  const IdempotencyKey key = FreshKey();
  auto claim = BeginSync(**store, key, "fp", absl::Seconds(30));
  ASSERT_TRUE(claim.ok()) << claim.status();
  EXPECT_EQ(claim->outcome, Claim::Outcome::kAcquired);
  EXPECT_TRUE(
      CompleteSync(**store, key, claim->owner_token, "out", absl::Hours(1))
          .ok());
  store->reset();
}

TEST(RedisIdempotencyStoreTest, HungServerTimesOutWithinTheCommandTimeout) {
  auto server = RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  auto loop = StartLoop();
  RedisIdempotencyStoreOptions options = FastFailOptions((*server)->url());
  options.client.ping_interval =
      absl::ZeroDuration();  // only the command notices
  auto store = RedisIdempotencyStore::Create(loop.get(), options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(WaitFor([&] { return (*store)->Healthy(); }));

  ASSERT_TRUE((*server)->Pause().ok());
  const absl::Time start = absl::Now();
  auto claim = BeginSync(**store, FreshKey(), "fp", absl::Seconds(30));
  const absl::Duration took = absl::Now() - start;
  ASSERT_FALSE(claim.ok());
  ExpectStoreUnavailable(claim.status());
  EXPECT_GE(took, absl::Milliseconds(250));
  EXPECT_LT(took, absl::Milliseconds(300) + absl::Milliseconds(500));
  EXPECT_FALSE((*store)->Healthy());

  ASSERT_TRUE((*server)->Resume().ok());
  EXPECT_TRUE(WaitFor([&] { return (*store)->Healthy(); }));
  EXPECT_TRUE(BeginSync(**store, FreshKey(), "fp", absl::Seconds(30)).ok());
  store->reset();
}

TEST(RedisIdempotencyStoreTest, RedisDownAtStartIsUnhealthyAndFailsClosed) {
  auto loop = StartLoop();
  auto server = RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string url = (*server)->url();
  ASSERT_TRUE((*server)->Stop().ok());
  auto store = RedisIdempotencyStore::Create(loop.get(), FastFailOptions(url));
  ASSERT_TRUE(store.ok()) << store.status();
  auto claim = BeginSync(**store, FreshKey(), "fp", absl::Seconds(30));
  ASSERT_FALSE(claim.ok());
  ExpectStoreUnavailable(claim.status());
  EXPECT_FALSE((*store)->Healthy());
  ASSERT_TRUE((*server)->Restart().ok());
  EXPECT_TRUE(WaitFor([&] { return (*store)->Healthy(); }));
  store->reset();
}

TEST(RedisIdempotencyStoreTest, ScriptFlushFallsBackToEval) {
  auto loop = StartLoop();
  RedisIdempotencyStoreOptions options;
  options.client.url = SharedServer().url();
  auto store = RedisIdempotencyStore::Create(loop.get(), options);
  ASSERT_TRUE(store.ok());
  const IdempotencyKey key = FreshKey();
  auto claim = BeginSync(**store, key, "fp", absl::Seconds(30));
  ASSERT_TRUE(claim.ok()) << claim.status();
  ASSERT_TRUE(SharedServer().Command({"SCRIPT", "FLUSH"}).ok());
  EXPECT_TRUE(
      CompleteSync(**store, key, claim->owner_token, "out", absl::Hours(1))
          .ok());
  ASSERT_TRUE(SharedServer().Command({"SCRIPT", "FLUSH"}).ok());
  auto replay = BeginSync(**store, key, "fp", absl::Seconds(30));
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->stored, "out");
  store->reset();
}

TEST(RedisIdempotencyStoreTest, ForeignValueUnderTheKeyIsInternal) {
  auto loop = StartLoop();
  RedisIdempotencyStoreOptions options;
  options.client.url = SharedServer().url();
  auto store = RedisIdempotencyStore::Create(loop.get(), options);
  ASSERT_TRUE(store.ok());
  const IdempotencyKey key = FreshKey();
  ASSERT_TRUE(SharedServer().Command({"SET", key.RedisKey(), "junk"}).ok());
  auto claim = BeginSync(**store, key, "fp", absl::Seconds(30));
  ASSERT_FALSE(claim.ok());
  EXPECT_EQ(claim.status().code(), absl::StatusCode::kInternal);
  store->reset();
}

TEST(RedisIdempotencyStoreTest, PasswordAndDatabaseFromTheUrl) {
  auto server = RedisServer::Start({"--requirepass", "s3cr/t"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto loop = StartLoop();
  RedisIdempotencyStoreOptions options = FastFailOptions(
      "redis://:s3cr%2Ft@127.0.0.1:" + std::to_string((*server)->port()) +
      "/3");
  auto store = RedisIdempotencyStore::Create(loop.get(), options);
  ASSERT_TRUE(store.ok()) << store.status();
  const IdempotencyKey key = FreshKey();
  auto claim = BeginSync(**store, key, "fp", absl::Seconds(30));
  ASSERT_TRUE(claim.ok()) << claim.status();
  EXPECT_TRUE((*store)->Healthy());
  EXPECT_EQ(*(*server)->Command({"EXISTS", key.RedisKey()}, "s3cr/t", 3), "1");
  EXPECT_EQ(*(*server)->Command({"EXISTS", key.RedisKey()}, "s3cr/t", 0), "0");

  // The password option (from a Secret file) overrides the URL's.
  options.client.url = (*server)->url();
  options.client.password = "wrong";
  auto bad = RedisIdempotencyStore::Create(loop.get(), options);
  ASSERT_TRUE(bad.ok());
  auto refused = BeginSync(**bad, FreshKey(), "fp", absl::Seconds(30));
  ASSERT_FALSE(refused.ok());
  ExpectStoreUnavailable(refused.status());
  EXPECT_FALSE((*bad)->Healthy());
  store->reset();
  bad->reset();
}

TEST(RedisIdempotencyStoreTest, CreateRejectsBadOptions) {
  auto loop = StartLoop();
  RedisIdempotencyStoreOptions options;
  options.client.url = "http://127.0.0.1:6379";
  EXPECT_EQ(RedisIdempotencyStore::Create(loop.get(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.client.url = "redis://127.0.0.1:6379";
  options.client.command_timeout = absl::ZeroDuration();
  EXPECT_EQ(RedisIdempotencyStore::Create(loop.get(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ParseRedisUriTest, AcceptsTheUsualForms) {
  auto e = ParseRedisUri("redis://127.0.0.1:6380");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, 6380);
  EXPECT_EQ(e->db, 0);
  EXPECT_EQ(e->password, "");

  e = ParseRedisUri("redis://redis.payments.svc");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "redis.payments.svc");
  EXPECT_EQ(e->port, 6379);

  e = ParseRedisUri("redis://:p%40ss@host:1/2");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->user, "");
  EXPECT_EQ(e->password, "p@ss");
  EXPECT_EQ(e->db, 2);

  e = ParseRedisUri("redis://alice:pw@[::1]:7000/");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->user, "alice");
  EXPECT_EQ(e->host, "::1");
  EXPECT_EQ(e->port, 7000);
}

TEST(ParseRedisUriTest, RejectsOthersWithoutEchoingSecrets) {
  for (const char* uri :
       {"", "127.0.0.1:6379", "rediss://:secret@h:1", "redis://:secret@h:0",
        "redis://:secret@h:x", "redis://:secret@h/x", "redis://secret@h",
        "redis://:secret@"}) {
    auto e = ParseRedisUri(uri);
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument) << uri;
    EXPECT_EQ(e.status().message().find("secret"), absl::string_view::npos);
  }
}

TEST(RedisClientTest, BinarySafeArgumentsAndReplies) {
  auto loop = StartLoop();
  RedisClientOptions options;
  options.url = SharedServer().url();
  auto client = RedisClient::Create(loop.get(), options);
  ASSERT_TRUE(client.ok());
  const std::string key = "payorch:test:" + RandomHex(8);
  const std::string value("a\0b\xff\r\n", 6);
  absl::Notification set_done, get_done;
  absl::StatusOr<RedisReply> get_reply;
  (*client)->Command({"SET", key, value}, [&](absl::StatusOr<RedisReply> r) {
    EXPECT_TRUE(r.ok() && r->type == RedisReply::Type::kStatus);
    set_done.Notify();
  });
  (*client)->Command({"GET", key}, [&](absl::StatusOr<RedisReply> r) {
    get_reply = std::move(r);
    get_done.Notify();
  });
  ASSERT_TRUE(set_done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  ASSERT_TRUE(get_done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  ASSERT_TRUE(get_reply.ok());
  EXPECT_EQ(get_reply->type, RedisReply::Type::kString);
  EXPECT_EQ(get_reply->str, value);
  client->reset();
}

TEST(RedisClientTest, DestroyingWithCommandsInFlightFailsThemUnavailable) {
  auto loop = StartLoop();
  RedisClientOptions options;
  options.url = SharedServer().url();
  auto client = RedisClient::Create(loop.get(), options);
  ASSERT_TRUE(client.ok());
  std::atomic<int> answered{0};
  for (int i = 0; i < 100; ++i) {
    (*client)->Command({"PING"},
                       [&](absl::StatusOr<RedisReply>) { ++answered; });
  }
  client->reset();
  // Every callback ran exactly once, before the destructor returned.
  EXPECT_EQ(answered.load(), 100);
}

}  // namespace
}  // namespace payorch::cache
