// The unsettled index against a real redis-server: bucket keys on their own
// hash tags, entries carry the request, removal is compare-and-delete.
#include "cache/unsettled_index.h"

#include <future>
#include <memory>
#include <set>
#include <string>

#include "absl/synchronization/notification.h"
#include "cache/redis_client.h"
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
    UnsettledIndexOptions index_options;
    index_options.buckets = 4;
    index_ = std::make_unique<UnsettledIndex>(client_, index_options);
  }
  void TearDown() override {
    index_.reset();
    client_.reset();
    loop_.reset();
  }

  absl::Status Add(const UnsettledEntry& e) {
    std::promise<absl::Status> p;
    index_->Add(e, [&p](absl::Status s) { p.set_value(std::move(s)); });
    return p.get_future().get();
  }
  absl::StatusOr<UnsettledPage> Scan(int bucket, int64_t offset = 0,
                                     int limit = 100) {
    std::promise<absl::StatusOr<UnsettledPage>> p;
    index_->Scan(bucket, offset, limit,
                 [&p](absl::StatusOr<UnsettledPage> r) { p.set_value(r); });
    return p.get_future().get();
  }
  absl::StatusOr<bool> Remove(const UnsettledEntry& e) {
    std::promise<absl::StatusOr<bool>> p;
    index_->Remove(e, [&p](absl::StatusOr<bool> r) { p.set_value(r); });
    return p.get_future().get();
  }

  static UnsettledEntry Entry(const std::string& trans_id,
                              const std::string& fp = "fp") {
    UnsettledEntry e;
    e.key = {"charge", "M1", trans_id};
    e.fingerprint = fp;
    e.request = std::string("req\0with:nul", 12) + trans_id;
    return e;
  }

  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<EventLoop> loop_;
  std::shared_ptr<RedisClient> client_;
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

TEST_F(UnsettledIndexTest, AddedEntriesAreScannedFromTheirBucket) {
  std::set<std::string> want;
  for (int i = 0; i < 20; ++i) {
    std::string t = "T" + std::to_string(i);
    ASSERT_TRUE(Add(Entry(t)).ok());
    want.insert(t);
  }
  std::set<std::string> seen;
  int64_t total = 0;
  for (int b = 0; b < index_->buckets(); ++b) {
    auto page = Scan(b);
    ASSERT_TRUE(page.ok()) << page.status();
    total += page->total;
    for (const UnsettledEntry& e : page->entries) {
      EXPECT_EQ(index_->BucketOf(e.key), b);
      EXPECT_EQ(e.request, Entry(e.key.trans_id).request);
      EXPECT_EQ(e.fingerprint, "fp");
      EXPECT_LE(e.added, page->now);
      EXPECT_GT(e.added, page->now - absl::Minutes(1));
      seen.insert(e.key.trans_id);
    }
  }
  EXPECT_EQ(seen, want);
  EXPECT_EQ(total, 20);
  // Every bucket key carries its own hash tag.
  auto keys = server_->Command({"KEYS", "payorch:unsettled:*"});
  ASSERT_TRUE(keys.ok());
  EXPECT_NE(keys->find("payorch:unsettled:{"), std::string::npos);
}

TEST_F(UnsettledIndexTest, PagesAreOldestFirstAndOffsetsPage) {
  // One bucket for every key.
  UnsettledIndexOptions one;
  one.buckets = 1;
  index_ = std::make_unique<UnsettledIndex>(client_, one);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Add(Entry("P" + std::to_string(i))).ok());
    absl::SleepFor(absl::Milliseconds(3));
  }
  auto first = Scan(0, 0, 2);
  auto second = Scan(0, 2, 10);
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_EQ(first->entries.size(), 2u);
  ASSERT_EQ(second->entries.size(), 3u);
  EXPECT_EQ(first->entries[0].key.trans_id, "P0");
  EXPECT_EQ(first->entries[1].key.trans_id, "P1");
  EXPECT_EQ(second->entries[2].key.trans_id, "P4");
  EXPECT_EQ(first->total, 5);
}

TEST_F(UnsettledIndexTest, RemoveKeepsAnEntryReAddedSinceTheScan) {
  const UnsettledEntry e = Entry("R1");
  const int b = index_->BucketOf(e.key);
  ASSERT_TRUE(Add(e).ok());
  auto page = Scan(b);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries.size(), 1u);
  // A caller adds the same entry again (a retry is about to claim it).
  ASSERT_TRUE(Add(e).ok());
  auto removed = Remove(page->entries[0]);
  ASSERT_TRUE(removed.ok());
  EXPECT_FALSE(*removed);
  // Scanned again, it goes.
  page = Scan(b);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries.size(), 1u);
  removed = Remove(page->entries[0]);
  ASSERT_TRUE(removed.ok());
  EXPECT_TRUE(*removed);
  page = Scan(b);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->entries.empty());
  EXPECT_EQ(page->total, 0);
}

TEST_F(UnsettledIndexTest, DifferentRequestsForOneTransIdAreSeparate) {
  ASSERT_TRUE(Add(Entry("D1", "fp-a")).ok());
  ASSERT_TRUE(Add(Entry("D1", "fp-b")).ok());
  auto page = Scan(index_->BucketOf(Entry("D1").key));
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries.size(), 2u);
  EXPECT_NE(page->entries[0].fingerprint, page->entries[1].fingerprint);
}

TEST_F(UnsettledIndexTest, FailsClosedWhileRedisIsDown) {
  ASSERT_TRUE(server_->Stop().ok());
  absl::Status s = Add(Entry("X1"));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(Scan(0).status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace payorch::cache
