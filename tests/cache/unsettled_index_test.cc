// The unsettled index against a real redis-server: the store's scripts keep
// one index per slot, on the record's own slot; List() finds the indexes,
// entries carry the request, removal is compare-and-delete.
#include "cache/unsettled_index.h"

#include <future>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "cache/redis_client.h"
#include "cache/redis_cluster.h"
#include "cache/redis_idempotency_store.h"
#include "common/event_loop.h"
#include "gtest/gtest.h"
#include "tests/testing/redis_server.h"

namespace payorch::cache {
namespace {

using ::payorch::testing::RedisServer;

class UnsettledIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    auto loop = EventLoop::Start("index-test");
    ASSERT_TRUE(loop.ok()) << loop.status();
    loop_ = *std::move(loop);
    absl::Notification running;
    loop_->Post([&running] { running.Notify(); });
    running.WaitForNotification();
    RedisClientOptions options;
    options.url = server_->url();
    auto client = RedisClient::Create(loop_.get(), options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::shared_ptr<RedisClient>(*std::move(client));
    for (int i = 0; i < 500 && !client_->Healthy(); ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    store_ = std::make_unique<RedisIdempotencyStore>(
        client_, RedisIdempotencyStoreOptions{});
    index_ = std::make_unique<UnsettledIndex>(client_);
  }
  void TearDown() override {
    index_.reset();
    store_.reset();
    client_.reset();
    loop_.reset();
  }

  // A caller's claim (or, with `settling`, a reconciler's): the store adds
  // the entry. Returns the owner token.
  std::string Claim(const UnsettledEntry& e, bool settling = false) {
    BeginArgs args;
    args.fingerprint = e.fingerprint;
    args.request = e.request;
    args.lease = absl::Seconds(30);
    args.settling = settling;
    std::promise<absl::StatusOr<cache::Claim>> p;
    store_->Begin(e.key, args, [&p](absl::StatusOr<cache::Claim> c) {
      p.set_value(std::move(c));
    });
    absl::StatusOr<cache::Claim> claim = p.get_future().get();
    EXPECT_TRUE(claim.ok()) << claim.status();
    if (!claim.ok()) return "";
    EXPECT_EQ(claim->outcome, cache::Claim::Outcome::kAcquired);
    return claim->owner_token;
  }
  template <typename Op>
  absl::Status Done(Op op) {
    std::promise<absl::Status> p;
    op([&p](absl::Status s) { p.set_value(std::move(s)); });
    return p.get_future().get();
  }
  absl::StatusOr<UnsettledIndexes> List() {
    std::promise<absl::StatusOr<UnsettledIndexes>> p;
    index_->List([&p](absl::StatusOr<UnsettledIndexes> r) { p.set_value(r); });
    return p.get_future().get();
  }
  absl::StatusOr<UnsettledPage> Scan(const std::string& index,
                                     int64_t offset = 0, int limit = 100) {
    std::promise<absl::StatusOr<UnsettledPage>> p;
    index_->Scan(index, offset, limit,
                 [&p](absl::StatusOr<UnsettledPage> r) { p.set_value(r); });
    return p.get_future().get();
  }
  absl::StatusOr<bool> Remove(const UnsettledEntry& e) {
    std::promise<absl::StatusOr<bool>> p;
    index_->Remove(e, [&p](absl::StatusOr<bool> r) { p.set_value(r); });
    return p.get_future().get();
  }
  // Every entry of every index, by trans_id.
  std::set<std::string> AllTransIds() {
    std::set<std::string> out;
    auto found = List();
    EXPECT_TRUE(found.ok()) << found.status();
    if (!found.ok()) return out;
    for (const std::string& name : found->names) {
      auto page = Scan(name);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) continue;
      for (const UnsettledEntry& e : page->entries) {
        out.insert(e.key.trans_id);
      }
    }
    return out;
  }

  static UnsettledEntry Entry(const std::string& trans_id) {
    UnsettledEntry e;
    e.key = {"charge", "M1", trans_id};
    e.fingerprint = "fp";
    e.request = std::string("req\0with:nul", 12) + trans_id;
    return e;
  }

  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<EventLoop> loop_;
  std::shared_ptr<RedisClient> client_;
  std::unique_ptr<RedisIdempotencyStore> store_;
  std::unique_ptr<UnsettledIndex> index_;
};

TEST(UnsettledEntryEncoding, RoundTripsAnyBytes) {
  UnsettledEntry e;
  e.key = {"checkout", "M:1", "T{1}:x"};
  e.fingerprint = std::string("f\0p", 3);
  e.request = "12:34:";
  auto back = DecodeUnsettledEntry(EncodeUnsettledEntry(e, "n"));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->key.family, "checkout");
  EXPECT_EQ(back->key.merchant_id, "M:1");
  EXPECT_EQ(back->key.trans_id, "T{1}:x");
  EXPECT_EQ(back->fingerprint, e.fingerprint);
  EXPECT_EQ(back->request, "12:34:");
  EXPECT_FALSE(DecodeUnsettledEntry("u1;3:abc").ok());
  EXPECT_FALSE(DecodeUnsettledEntry("garbage").ok());
  EXPECT_FALSE(DecodeUnsettledEntry(EncodeUnsettledEntry(e, "n") + "x").ok());
}

TEST(UnsettledIndexName, IsOnTheRecordsOwnSlotForEverySlot) {
  for (int slot = 0; slot < kClusterSlots; ++slot) {
    ASSERT_EQ(KeySlot(SlotTag(slot)), slot) << slot;
    ASSERT_LE(SlotTag(slot).size(), 6u);
  }
  for (int i = 0; i < 2000; ++i) {
    const IdempotencyKey key{"checkout", "M" + std::to_string(i % 7),
                             "T" + std::to_string(i)};
    const std::string index = UnsettledIndexName(key);
    ASSERT_EQ(KeySlot(UnsettledEntriesKey(index)), KeySlot(key.RedisKey()));
    ASSERT_EQ(KeySlot(UnsettledSinceKey(index)), KeySlot(key.RedisKey()));
  }
}

TEST_F(UnsettledIndexTest, ClaimsAreListedOnTheirSlotsIndex) {
  std::set<std::string> want;
  for (int i = 0; i < 20; ++i) {
    std::string t = "T" + std::to_string(i);
    ASSERT_FALSE(Claim(Entry(t)).empty());
    want.insert(t);
  }
  auto found = List();
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->primaries, 1);
  EXPECT_EQ(found->failed, 0);
  std::set<std::string> seen;
  int64_t total = 0;
  for (const std::string& name : found->names) {
    auto page = Scan(name);
    ASSERT_TRUE(page.ok()) << page.status();
    total += page->total;
    for (const UnsettledEntry& e : page->entries) {
      EXPECT_EQ(UnsettledIndexName(e.key), name);
      EXPECT_EQ(e.field, e.key.RedisKey());
      EXPECT_EQ(e.request, Entry(e.key.trans_id).request);
      EXPECT_EQ(e.fingerprint, "fp");
      EXPECT_LE(e.added, page->now);
      EXPECT_GT(e.added, page->now - absl::Minutes(1));
      seen.insert(e.key.trans_id);
    }
  }
  EXPECT_EQ(seen, want);
  EXPECT_EQ(total, 20);
}

// Begin adds, MarkUnknown and a Release back to UNKNOWN keep; Complete,
// Forget and a Release that deletes remove: in the same script.
TEST_F(UnsettledIndexTest, SettlingTheRecordRemovesItsEntry) {
  const std::string a = Claim(Entry("A")), b = Claim(Entry("B")),
                    c = Claim(Entry("C")), d = Claim(Entry("D"));
  EXPECT_EQ(AllTransIds(), (std::set<std::string>{"A", "B", "C", "D"}));
  const IdempotencyKey ka = Entry("A").key, kb = Entry("B").key,
                       kc = Entry("C").key, kd = Entry("D").key;
  ASSERT_TRUE(Done([&](auto cb) {
                store_->Complete(ka, a, "out", absl::Hours(1), std::move(cb));
              }).ok());
  ASSERT_TRUE(
      Done([&](auto cb) { store_->Release(kb, b, std::move(cb)); }).ok());
  ASSERT_TRUE(
      Done([&](auto cb) { store_->MarkUnknown(kc, c, std::move(cb)); }).ok());
  ASSERT_TRUE(
      Done([&](auto cb) { store_->Forget(kd, d, std::move(cb)); }).ok());
  EXPECT_EQ(AllTransIds(), (std::set<std::string>{"C"}));
  // A retry takes the UNKNOWN record over and gives it up: still unsettled.
  const std::string c2 = Claim(Entry("C"));
  ASSERT_TRUE(
      Done([&](auto cb) { store_->Release(kc, c2, std::move(cb)); }).ok());
  EXPECT_EQ(AllTransIds(), (std::set<std::string>{"C"}));
  // Settled at last (the reconciler's "never happened").
  const std::string c3 = Claim(Entry("C"), /*settling=*/true);
  ASSERT_TRUE(
      Done([&](auto cb) { store_->Forget(kc, c3, std::move(cb)); }).ok());
  EXPECT_TRUE(AllTransIds().empty());
}

TEST_F(UnsettledIndexTest, PagesAreOldestFirstAndOffsetsPage) {
  // Five trans_ids on one slot, hence one index.
  std::vector<std::string> ids;
  const int slot = KeySlot(Entry("P0").key.RedisKey());
  for (int n = 0; ids.size() < 5; ++n) {
    const std::string t = "P" + std::to_string(n);
    if (KeySlot(Entry(t).key.RedisKey()) == slot) ids.push_back(t);
  }
  for (const std::string& t : ids) {
    ASSERT_FALSE(Claim(Entry(t)).empty());
    absl::SleepFor(absl::Milliseconds(3));
  }
  const std::string index = UnsettledIndexName(Entry("P0").key);
  auto first = Scan(index, 0, 2);
  auto second = Scan(index, 2, 10);
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_EQ(first->entries.size(), 2u);
  ASSERT_EQ(second->entries.size(), 3u);
  EXPECT_EQ(first->entries[0].key.trans_id, ids[0]);
  EXPECT_EQ(first->entries[1].key.trans_id, ids[1]);
  EXPECT_EQ(second->entries[2].key.trans_id, ids[4]);
  EXPECT_EQ(first->total, 5);
}

// A reconciler's claim keeps the entry's time (it bounds the last caller's
// attempt); a caller's retry refreshes it.
TEST_F(UnsettledIndexTest, OnlyACallersClaimRefreshesTheEntry) {
  const UnsettledEntry e = Entry("S1");
  const std::string index = UnsettledIndexName(e.key);
  const std::string first = Claim(e);
  ASSERT_TRUE(Done([&](auto cb) {
                store_->MarkUnknown(e.key, first, std::move(cb));
              }).ok());
  auto before = Scan(index);
  ASSERT_TRUE(before.ok());
  ASSERT_EQ(before->entries.size(), 1u);
  absl::SleepFor(absl::Milliseconds(20));
  const std::string settling = Claim(e, /*settling=*/true);
  ASSERT_TRUE(Done([&](auto cb) {
                store_->Release(e.key, settling, std::move(cb));
              }).ok());
  auto after = Scan(index);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->entries.size(), 1u);
  EXPECT_EQ(after->entries[0].added, before->entries[0].added);
  EXPECT_EQ(after->entries[0].stored, before->entries[0].stored);
  // A caller's retry: the entry is re-added, so a Remove() of the scanned
  // bytes keeps it.
  ASSERT_FALSE(Claim(e).empty());
  auto retried = Scan(index);
  ASSERT_TRUE(retried.ok());
  ASSERT_EQ(retried->entries.size(), 1u);
  EXPECT_GT(retried->entries[0].added, before->entries[0].added);
  auto removed = Remove(before->entries[0]);
  ASSERT_TRUE(removed.ok());
  EXPECT_FALSE(*removed);
  removed = Remove(retried->entries[0]);
  ASSERT_TRUE(removed.ok());
  EXPECT_TRUE(*removed);
  EXPECT_TRUE(AllTransIds().empty());
}

// A caller whose request differs is refused before anything is written.
TEST_F(UnsettledIndexTest, AMismatchingRequestLeavesTheEntry) {
  const UnsettledEntry e = Entry("D1");
  ASSERT_FALSE(Claim(e).empty());
  auto before = Scan(UnsettledIndexName(e.key));
  ASSERT_TRUE(before.ok());
  std::promise<absl::StatusOr<cache::Claim>> p;
  store_->Begin(e.key, "other-fp", absl::Seconds(30),
                [&p](absl::StatusOr<cache::Claim> c) { p.set_value(c); });
  auto claim = p.get_future().get();
  ASSERT_TRUE(claim.ok());
  EXPECT_EQ(claim->outcome, cache::Claim::Outcome::kMismatch);
  auto after = Scan(UnsettledIndexName(e.key));
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->entries.size(), 1u);
  EXPECT_EQ(after->entries[0].stored, before->entries[0].stored);
}

TEST_F(UnsettledIndexTest, FailsClosedWhileRedisIsDown) {
  ASSERT_FALSE(Claim(Entry("X1")).empty());
  ASSERT_TRUE(server_->Stop().ok());
  EXPECT_EQ(List().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Scan(UnsettledIndexName(Entry("X1").key)).status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace payorch::cache
