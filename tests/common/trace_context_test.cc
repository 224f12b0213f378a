#include "common/trace_context.h"

#include <string>

#include "absl/synchronization/notification.h"
#include "common/event_loop.h"
#include "gtest/gtest.h"

namespace payorch {
namespace {

constexpr char kValid[] =
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceContextTest, ParsesVersion00AndWritesItBack) {
  auto t = TraceContext::Parse(kValid);
  ASSERT_TRUE(t.has_value());
  EXPECT_TRUE(t->valid());
  EXPECT_EQ(t->TraceIdHex(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(t->SpanIdHex(), "00f067aa0ba902b7");
  EXPECT_EQ(t->flags, 1);
  EXPECT_EQ(t->ToTraceparent(), kValid);
}

TEST(TraceContextTest, LaterVersionsKeepTheirFirstFourFields) {
  auto t = TraceContext::Parse(
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->ToTraceparent(), kValid);
}

TEST(TraceContextTest, RejectsMalformedHeaders) {
  for (const char* bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
           "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
       }) {
    EXPECT_FALSE(TraceContext::Parse(bad).has_value()) << bad;
  }
}

TEST(TraceContextTest, NewRootAndChildHaveFreshIds) {
  TraceContext root = TraceContext::NewRoot();
  EXPECT_TRUE(root.valid());
  EXPECT_TRUE(TraceContext::Parse(root.ToTraceparent()).has_value());
  EXPECT_NE(root.TraceIdHex(), TraceContext::NewRoot().TraceIdHex());
  TraceContext child = root.Child();
  EXPECT_EQ(child.TraceIdHex(), root.TraceIdHex());
  EXPECT_NE(child.SpanIdHex(), root.SpanIdHex());
}

TEST(TraceContextTest, ScopesNestAndRestore) {
  EXPECT_FALSE(CurrentTrace().valid());
  TraceContext a = TraceContext::NewRoot(), b = TraceContext::NewRoot();
  {
    ScopedTrace sa(a);
    EXPECT_EQ(CurrentTrace().TraceIdHex(), a.TraceIdHex());
    {
      ScopedTrace sb(b);
      EXPECT_EQ(CurrentTrace().TraceIdHex(), b.TraceIdHex());
    }
    EXPECT_EQ(CurrentTrace().TraceIdHex(), a.TraceIdHex());
  }
  EXPECT_FALSE(CurrentTrace().valid());
}

// The trace current when work is queued is current while it runs, on the
// loop thread, on a timer and in the worker pool; and a callback bound with
// BindTrace carries it to whichever thread calls it.
TEST(TraceContextTest, TravelsWithPostedWorkAndBoundCallbacks) {
  auto loop = EventLoop::Start("trace-test");
  ASSERT_TRUE(loop.ok());
  WorkerPool pool(1);
  TraceContext trace = TraceContext::NewRoot();
  std::string posted, timed, submitted, bound;
  absl::Notification done, submitted_done;
  absl::AnyInvocable<void(int) &&> callback;
  {
    ScopedTrace scope(trace);
    callback = BindTrace(absl::AnyInvocable<void(int) &&>(
        [&](int) { bound = CurrentTrace().TraceIdHex(); }));
    (*loop)->Post([&] { posted = CurrentTrace().TraceIdHex(); });
    pool.Submit([&] {
      submitted = CurrentTrace().TraceIdHex();
      submitted_done.Notify();
    });
    (*loop)->RunAfter(absl::Milliseconds(1), [&] {
      timed = CurrentTrace().TraceIdHex();
      std::move(callback)(1);
      done.Notify();
    });
  }
  // Outside the scope: untraced work stays untraced.
  std::string untraced = "unset";
  (*loop)->Post([&] { untraced = CurrentTrace().TraceIdHex(); });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::Notification flushed;
  (*loop)->Post([&] { flushed.Notify(); });
  ASSERT_TRUE(flushed.WaitForNotificationWithTimeout(absl::Seconds(10)));
  (*loop)->Stop();
  EXPECT_EQ(posted, trace.TraceIdHex());
  EXPECT_EQ(timed, trace.TraceIdHex());
  EXPECT_EQ(bound, trace.TraceIdHex());
  EXPECT_EQ(untraced, std::string(32, '0'));
  ASSERT_TRUE(submitted_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(submitted, trace.TraceIdHex());
}

}  // namespace
}  // namespace payorch
