// The reconciler over a real redis-server (the Redis idempotency store and the
// unsettled index on one connection) and a scripted PayKKa lookup: unknown
// outcomes are adopted or released with no caller retrying, the quiet period
// holds a release back, failures are retried with backoff, and settled or
// live records are left to their callers.
#include "service/reconciler.h"

#include <atomic>
#include <future>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "cache/redis_idempotency_store.h"
#include "cache/unsettled_index.h"
#include "common/errors.h"
#include "common/event_loop.h"
#include "gtest/gtest.h"
#include "payorch/internal/stored_outcome.pb.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "tests/testing/redis_server.h"

namespace payorch::service {
namespace {

using cache::Claim;
using cache::IdempotencyKey;
using cache::UnsettledEntry;
using ::payorch::testing::RedisServer;

std::unique_ptr<EventLoop> StartLoop(const char* name) {
  auto loop = EventLoop::Start(name);
  EXPECT_TRUE(loop.ok()) << loop.status();
  absl::Notification running;
  (*loop)->Post([&running] { running.Notify(); });
  running.WaitForNotification();
  return *std::move(loop);
}

template <typename Pred>
bool WaitFor(Pred pred, absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!pred()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

// What the scripted PayKKa answers for a trans_id.
class ScriptedPaykka {
 public:
  void Set(const std::string& trans_id, absl::StatusOr<std::string> answer) {
    absl::MutexLock lock(&mu_);
    answers_.insert_or_assign(trans_id, std::move(answer));
  }
  int Calls(const std::string& trans_id) {
    absl::MutexLock lock(&mu_);
    auto it = calls_.find(trans_id);
    return it == calls_.end() ? 0 : it->second;
  }
  ReconcileLookup Lookup() {
    return
        [this](const UnsettledEntry& e, absl::Time,
               absl::AnyInvocable<void(absl::StatusOr<std::string>) &&> done) {
          absl::StatusOr<std::string> answer =
              absl::UnavailableError("no answer scripted");
          {
            absl::MutexLock lock(&mu_);
            ++calls_[e.key.trans_id];
            auto it = answers_.find(e.key.trans_id);
            if (it != answers_.end()) answer = it->second;
          }
          std::move(done)(std::move(answer));
        };
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, absl::StatusOr<std::string>> answers_;
  absl::flat_hash_map<std::string, int> calls_;
};

// The bytes the lookup answers for an adopted response, and for a refusal.
std::string Adopted(const std::string& response) {
  internal::StoredOutcome record;
  record.set_response(response);
  return record.SerializeAsString();
}
std::string Refused() {
  internal::StoredOutcome record;
  record.mutable_error()->set_code(6);  // ALREADY_EXISTS
  record.mutable_error()->set_message("trans_id reused");
  return record.SerializeAsString();
}

absl::Status NotFound() {
  return MakeError(Reason::kOrderNotFound, "the order doesn't exist");
}

class ReconcilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    redis_loop_ = StartLoop("redis");
    loop_ = StartLoop("reconciler");
    cache::RedisIdempotencyStoreOptions options;
    options.client.url = server_->url();
    auto store =
        cache::RedisIdempotencyStore::Create(redis_loop_.get(), options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    ASSERT_TRUE(WaitFor([&] { return store_->Healthy(); }));
    index_ = std::make_unique<cache::UnsettledIndex>(store_->client());
    registry_ = std::make_shared<prometheus::Registry>();
  }
  void TearDown() override {
    reconciler_.reset();
    index_.reset();
    store_.reset();
    loop_.reset();
    redis_loop_.reset();
  }

  void StartReconciler(ReconcilerOptions o = Fast()) {
    reconciler_ =
        std::make_unique<Reconciler>(loop_.get(), index_.get(), store_.get(),
                                     paykka_.Lookup(), registry_.get(), o);
    reconciler_->Start();
  }
  static ReconcilerOptions Fast() {
    ReconcilerOptions o;
    o.scan_interval = absl::Milliseconds(50);
    o.grace = absl::ZeroDuration();
    o.lease = absl::Milliseconds(400);
    o.paykka_timeout = absl::Milliseconds(100);
    o.initial_backoff = absl::Milliseconds(50);
    o.max_backoff = absl::Milliseconds(200);
    o.page_size = 2;  // several pages per index
    return o;
  }

  static IdempotencyKey Key(const std::string& trans_id) {
    return {"charge", "M1", trans_id};
  }

  absl::StatusOr<Claim> Begin(const std::string& trans_id,
                              absl::Duration lease = absl::Seconds(30)) {
    std::promise<absl::StatusOr<Claim>> p;
    store_->Begin(Key(trans_id), "fp", lease,
                  [&p](absl::StatusOr<Claim> c) { p.set_value(c); });
    return p.get_future().get();
  }

  // A caller's attempt: claimed (which indexes it), and (unless
  // `keep_inflight`) left UNKNOWN, as after a timeout; the caller never
  // comes back.
  void Unknown(const std::string& trans_id, bool keep_inflight = false,
               absl::Duration lease = absl::Seconds(30)) {
    cache::BeginArgs args;
    args.fingerprint = "fp";
    args.lease = lease;
    args.request = "request of " + trans_id;
    std::promise<absl::StatusOr<Claim>> p;
    store_->Begin(Key(trans_id), args,
                  [&p](absl::StatusOr<Claim> c) { p.set_value(c); });
    auto claim = p.get_future().get();
    ASSERT_TRUE(claim.ok());
    ASSERT_EQ(claim->outcome, Claim::Outcome::kAcquired);
    if (keep_inflight) return;
    std::promise<absl::Status> marked;
    store_->MarkUnknown(Key(trans_id), claim->owner_token,
                        [&](absl::Status s) { marked.set_value(s); });
    ASSERT_TRUE(marked.get_future().get().ok());
  }

  int64_t IndexEntries() {
    std::promise<absl::StatusOr<cache::UnsettledIndexes>> listed;
    index_->List([&](absl::StatusOr<cache::UnsettledIndexes> r) {
      listed.set_value(r);
    });
    auto found = listed.get_future().get();
    if (!found.ok()) return -1;
    int64_t n = 0;
    for (const std::string& index : found->names) {
      std::promise<absl::StatusOr<cache::UnsettledPage>> p;
      index_->Scan(index, 0, 1000, [&](absl::StatusOr<cache::UnsettledPage> r) {
        p.set_value(r);
      });
      auto page = p.get_future().get();
      if (!page.ok()) return -1;
      n += page->total;
    }
    return n;
  }

  std::string State(const std::string& trans_id) {
    auto s = server_->Command({"HGET", Key(trans_id).RedisKey(), "state"});
    return s.ok() ? *s : "?";
  }

  std::string Metrics() {
    prometheus::TextSerializer serializer;
    return serializer.Serialize(registry_->Collect());
  }

  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<EventLoop> redis_loop_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<cache::RedisIdempotencyStore> store_;
  std::unique_ptr<cache::UnsettledIndex> index_;
  std::shared_ptr<prometheus::Registry> registry_;
  ScriptedPaykka paykka_;
  std::unique_ptr<Reconciler> reconciler_;
};

TEST_F(ReconcilerTest, AdoptsWhatPaykkaHoldsAsTheReplayableAnswer) {
  for (int i = 0; i < 5; ++i) {
    std::string t = "A" + std::to_string(i);
    paykka_.Set(t, Adopted("stored answer " + t));
    Unknown(t);
  }
  StartReconciler();
  ASSERT_TRUE(WaitFor([&] { return IndexEntries() == 0; })) << Metrics();
  for (int i = 0; i < 5; ++i) {
    std::string t = "A" + std::to_string(i);
    // A caller retrying later gets the adopted answer.
    auto claim = Begin(t);
    ASSERT_TRUE(claim.ok());
    EXPECT_EQ(claim->outcome, Claim::Outcome::kCompleted) << t;
    EXPECT_EQ(claim->stored, Adopted("stored answer " + t));
  }
  EXPECT_NE(
      Metrics().find("payorch_reconciler_settled_total{result=\"adopted\"} 5"),
      std::string::npos)
      << Metrics();
}

TEST_F(ReconcilerTest, AnotherObjectUnderTheTransIdIsStoredAsTheRefusal) {
  paykka_.Set("R1", Refused());
  Unknown("R1");
  StartReconciler();
  ASSERT_TRUE(WaitFor([&] { return State("R1") == "COMPLETED"; }));
  auto claim = Begin("R1");
  ASSERT_TRUE(claim.ok());
  EXPECT_EQ(claim->outcome, Claim::Outcome::kCompleted);
  EXPECT_EQ(claim->stored, Refused());
  ASSERT_TRUE(WaitFor([&] {
    return Metrics().find(
               "payorch_reconciler_settled_total{result=\"trans_id_"
               "reused\"} 1") != std::string::npos;
  }));
}

TEST_F(ReconcilerTest, ReleasesOnlyAfterTheQuietPeriod) {
  paykka_.Set("N1", NotFound());
  ReconcilerOptions o = Fast();
  o.paykka_timeout = absl::Seconds(2);  // quiet: lease + 2 s after the entry
  const absl::Time start = absl::Now();
  Unknown("N1");
  StartReconciler(o);
  ASSERT_TRUE(WaitFor([&] { return paykka_.Calls("N1") >= 2; }));
  // Asked, "not found", but PayKKa may still be processing: still UNKNOWN.
  EXPECT_EQ(State("N1"), "UNKNOWN");
  EXPECT_EQ(IndexEntries(), 1);
  ASSERT_TRUE(WaitFor([&] { return IndexEntries() == 0; }));
  EXPECT_GE(absl::Now() - start, o.lease + o.paykka_timeout);
  EXPECT_EQ(State("N1"), "(nil)");
  EXPECT_NE(Metrics().find(
                "payorch_reconciler_settled_total{result=\"not_found\"} 1"),
            std::string::npos);
}

TEST_F(ReconcilerTest, KeepsAskingWhilePaykkaFailsThenSettles) {
  paykka_.Set("F1", absl::UnavailableError("PayKKa is down"));
  Unknown("F1");
  StartReconciler();
  ASSERT_TRUE(WaitFor([&] { return paykka_.Calls("F1") >= 3; }));
  EXPECT_EQ(State("F1"), "UNKNOWN");
  EXPECT_NE(Metrics().find("payorch_unsettled_records 1"), std::string::npos)
      << Metrics();
  paykka_.Set("F1", Adopted("late answer"));
  ASSERT_TRUE(WaitFor([&] { return State("F1") == "COMPLETED"; }));
  ASSERT_TRUE(WaitFor([&] {
    return Metrics().find("payorch_unsettled_records 0") != std::string::npos;
  }));
}

TEST_F(ReconcilerTest, TakesOverAnOrphanedClaimOnlyAfterItsLease) {
  paykka_.Set("O1", Adopted("adopted after crash"));
  // A replica claimed and died: INFLIGHT with a 1 s lease, never answered.
  Unknown("O1", /*keep_inflight=*/true, absl::Seconds(1));
  const absl::Time start = absl::Now();
  StartReconciler();
  ASSERT_TRUE(WaitFor([&] { return State("O1") == "COMPLETED"; }));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(900));
}

// Complete removes the entry itself; one left behind anyway (written by
// hand here, as by an interrupted older deployment) only goes.
TEST_F(ReconcilerTest, SettledRecordsOnlyLoseTheirEntry) {
  auto claim = Begin("C1");
  ASSERT_TRUE(claim.ok());
  std::promise<absl::Status> completed;
  store_->Complete(Key("C1"), claim->owner_token, "done", absl::Hours(1),
                   [&](absl::Status s) { completed.set_value(s); });
  ASSERT_TRUE(completed.get_future().get().ok());
  EXPECT_EQ(IndexEntries(), 0);
  UnsettledEntry e;
  e.key = Key("C1");
  e.fingerprint = "fp";
  const std::string index = cache::UnsettledIndexName(e.key);
  ASSERT_TRUE(
      server_
          ->Command({"HSET", cache::UnsettledEntriesKey(index),
                     e.key.RedisKey(), cache::EncodeUnsettledEntry(e, "n")})
          .ok());
  ASSERT_TRUE(server_
                  ->Command({"ZADD", cache::UnsettledSinceKey(index),
                             std::to_string(absl::ToUnixMillis(absl::Now())),
                             e.key.RedisKey()})
                  .ok());
  EXPECT_EQ(IndexEntries(), 1);
  StartReconciler();
  ASSERT_TRUE(WaitFor([&] { return IndexEntries() == 0; }));
  EXPECT_EQ(paykka_.Calls("C1"), 0);
  EXPECT_EQ(State("C1"), "COMPLETED");
}

TEST_F(ReconcilerTest, YoungEntriesAreLeftToTheirCalls) {
  ReconcilerOptions o = Fast();
  o.grace = absl::Seconds(60);
  paykka_.Set("Y1", Adopted("x"));
  Unknown("Y1");
  StartReconciler(o);
  // Many passes (50 ms apart) later:
  absl::SleepFor(absl::Seconds(1));
  EXPECT_EQ(Metrics().find("payorch_reconciler_passes_total 0"),
            std::string::npos);
  EXPECT_EQ(paykka_.Calls("Y1"), 0);
  EXPECT_EQ(State("Y1"), "UNKNOWN");
}

}  // namespace
}  // namespace payorch::service
