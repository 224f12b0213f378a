// The event log against a real redis-server: idempotent appends (duplicate
// and stale), ranges after a token, trimming by age and length remembered
// for resume checks, and EventTail following streams over one connection.
#include "cache/event_log.h"

#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/event_loop.h"
#include "gtest/gtest.h"
#include "tests/testing/redis_server.h"

namespace payorch::cache {
namespace {

using ::payorch::testing::RedisServer;

class EventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    auto loop = EventLoop::Start("event-log-test");
    ASSERT_TRUE(loop.ok()) << loop.status();
    loop_ = *std::move(loop);
    client_ = Connect(absl::Milliseconds(500));
    blocking_ = Connect(absl::Seconds(3));
  }
  void TearDown() override {
    if (tail_ != nullptr) {
      std::promise<void> gone;
      loop_->Post([this, &gone] {
        tail_.reset();
        gone.set_value();
      });
      gone.get_future().wait();
    }
    log_.reset();
    blocking_.reset();
    client_.reset();
    loop_.reset();
  }

  std::shared_ptr<RedisClient> Connect(absl::Duration timeout) {
    RedisClientOptions options;
    options.url = server_->url();
    options.command_timeout = timeout;
    auto client = RedisClient::Create(loop_.get(), options);
    EXPECT_TRUE(client.ok()) << client.status();
    std::shared_ptr<RedisClient> c(*std::move(client));
    for (int i = 0; i < 500 && !c->Healthy(); ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    return c;
  }

  void MakeLog(EventLogOptions options = {}) {
    log_ = std::make_unique<EventLog>(client_, options);
  }

  absl::StatusOr<AppendResult> Append(const std::string& subject,
                                      const std::string& fp, int64_t rank,
                                      const std::string& payload) {
    std::promise<absl::StatusOr<AppendResult>> p;
    log_->Append("M1", {subject, fp, rank, payload},
                 [&p](absl::StatusOr<AppendResult> r) { p.set_value(r); });
    return p.get_future().get();
  }
  std::vector<StoredEvent> Range(StreamId after) {
    std::promise<absl::StatusOr<std::vector<StoredEvent>>> p;
    log_->Range("M1", after, 100,
                [&p](absl::StatusOr<std::vector<StoredEvent>> r) {
                  p.set_value(std::move(r));
                });
    auto r = p.get_future().get();
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::vector<StoredEvent>{};
  }
  StreamPosition Position() {
    std::promise<absl::StatusOr<StreamPosition>> p;
    log_->Position("M1", [&p](absl::StatusOr<StreamPosition> r) {
      p.set_value(std::move(r));
    });
    auto r = p.get_future().get();
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : StreamPosition{};
  }

  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<EventLoop> loop_;
  std::shared_ptr<RedisClient> client_;
  std::shared_ptr<RedisClient> blocking_;
  std::unique_ptr<EventLog> log_;
  std::unique_ptr<EventTail> tail_;
};

TEST(StreamIdTest, ParsesAndOrders) {
  EXPECT_EQ(StreamId::Parse("12-3")->ToString(), "12-3");
  EXPECT_FALSE(StreamId::Parse("12").has_value());
  EXPECT_FALSE(StreamId::Parse("-3").has_value());
  EXPECT_FALSE(StreamId::Parse("1-2-3").has_value());
  EXPECT_FALSE(StreamId::Parse("a-1").has_value());
  EXPECT_LT(*StreamId::Parse("9-5"), *StreamId::Parse("10-0"));
  EXPECT_LT(*StreamId::Parse("10-0"), *StreamId::Parse("10-1"));
}

TEST(EventKeysTest, OneHashTagPerMerchantEscaped) {
  EXPECT_EQ(EventStreamKey("M1"), "payorch:events:{M1}");
  EXPECT_EQ(EventStateKey("M1", "GW1"), "payorch:evstate:{M1}:GW1");
  EXPECT_EQ(EventMetaKey("M{1}"), "payorch:evmeta:{M%7B1%7D}");
}

TEST_F(EventLogTest, AppendIsIdempotentAndNeverMovesAnOrderBackwards) {
  MakeLog();
  auto a = Append("GW1", "PROCESSING", 1, "p1");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->kind, AppendResult::Kind::kAppended);
  auto dup = Append("GW1", "PROCESSING", 1, "p1-again");
  ASSERT_TRUE(dup.ok());
  EXPECT_EQ(dup->kind, AppendResult::Kind::kDuplicate);
  EXPECT_EQ(dup->id, a->id);
  auto b = Append("GW1", "SUCCESS", 3, "p2");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->kind, AppendResult::Kind::kAppended);
  auto stale = Append("GW1", "PROCESSING-late", 1, "p3");
  ASSERT_TRUE(stale.ok());
  EXPECT_EQ(stale->kind, AppendResult::Kind::kStale);
  auto other = Append("GW2", "PROCESSING", 1, "q1");
  ASSERT_TRUE(other.ok());
  std::vector<StoredEvent> all = Range(StreamId{});
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].payload, "p1");
  EXPECT_EQ(all[1].payload, "p2");
  EXPECT_EQ(all[2].payload, "q1");
  std::vector<StoredEvent> after = Range(a->id);
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].id, b->id);
  StreamPosition pos = Position();
  EXPECT_EQ(pos.last, other->id);
  EXPECT_EQ(pos.trimmed, StreamId{});
}

TEST_F(EventLogTest, TrimmingByLengthIsRemembered) {
  EventLogOptions options;
  options.max_len = 2;
  MakeLog(options);
  std::vector<StreamId> ids;
  for (int i = 0; i < 4; ++i) {
    auto r = Append("GW" + std::to_string(i), "S", 1, "e");
    ASSERT_TRUE(r.ok());
    ids.push_back(r->id);
  }
  EXPECT_EQ(Range(StreamId{}).size(), 2u);
  EXPECT_EQ(Position().trimmed, ids[1]);
}

TEST_F(EventLogTest, TrimmingByAgeIsRemembered) {
  EventLogOptions options;
  options.retention = absl::Milliseconds(300);
  MakeLog(options);
  auto a = Append("GW1", "S", 1, "a");
  ASSERT_TRUE(a.ok());
  absl::SleepFor(absl::Milliseconds(500));
  auto b = Append("GW2", "S", 1, "b");
  ASSERT_TRUE(b.ok());
  std::vector<StoredEvent> kept = Range(StreamId{});
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].id, b->id);
  EXPECT_EQ(Position().trimmed, a->id);
}

TEST_F(EventLogTest, PositionOfAMissingStreamIsZero) {
  MakeLog();
  StreamPosition pos = Position();
  EXPECT_EQ(pos.last, StreamId{});
  EXPECT_EQ(pos.trimmed, StreamId{});
}

TEST_F(EventLogTest, TailDeliversNewEntriesOfFollowedStreamsOnly) {
  MakeLog();
  auto before = Append("GW0", "S", 1, "before");
  ASSERT_TRUE(before.ok());
  std::promise<std::vector<StoredEvent>> got;
  std::atomic<bool> delivered{false};
  absl::Notification following;
  loop_->Post([&] {
    tail_ = std::make_unique<EventTail>(
        blocking_, loop_.get(),
        [&](const std::string& merchant,
            const std::vector<StoredEvent>& entries) {
          EXPECT_EQ(merchant, "M1");
          if (!delivered.exchange(true)) got.set_value(entries);
        });
    tail_->Follow("M1", before->id);
    following.Notify();
  });
  following.WaitForNotification();
  auto next = Append("GW1", "S", 1, "next");
  ASSERT_TRUE(next.ok());
  auto future = got.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(5)),
            std::future_status::ready);
  std::vector<StoredEvent> entries = future.get();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].payload, "next");
}

}  // namespace
}  // namespace payorch::cache
