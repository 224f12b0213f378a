#include "common/event_loop.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace payorch {
namespace {

using ::testing::ElementsAre;

// Generous bound for "this should happen soon"; a pass takes milliseconds.
constexpr absl::Duration kWait = absl::Seconds(10);
constexpr absl::Duration kTick = absl::Milliseconds(10);

std::unique_ptr<EventLoop> StartLoop() {
  absl::StatusOr<std::unique_ptr<EventLoop>> loop =
      EventLoop::Start("test-loop");
  EXPECT_TRUE(loop.ok()) << loop.status();
  return loop.ok() ? *std::move(loop) : nullptr;
}

// Blocks until every closure posted to `loop` before this call has run.
void Flush(EventLoop& loop) {
  absl::Notification done;
  loop.Post([&done] { done.Notify(); });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
}

// libevent measures timers on CLOCK_MONOTONIC, which steady_clock reads too.
using SteadyTime = std::chrono::steady_clock::time_point;
absl::Duration Since(SteadyTime start, SteadyTime end) {
  return absl::FromChrono(end - start);
}

TEST(EventLoopTest, PostRunsClosureOnLoopThread) {
  auto loop = StartLoop();
  ASSERT_NE(loop, nullptr);
  EXPECT_NE(loop->base(), nullptr);
  EXPECT_FALSE(loop->InLoopThread());

  absl::Notification ran;
  bool in_loop = false;
  std::thread::id ran_on;
  loop->Post([&] {
    in_loop = loop->InLoopThread();
    ran_on = std::this_thread::get_id();
    ran.Notify();
  });
  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(kWait));
  EXPECT_TRUE(in_loop);
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST(EventLoopTest, PostFromManyThreadsRunsEachClosureOnceInPerThreadOrder) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 1000;
  auto loop = StartLoop();
  ASSERT_NE(loop, nullptr);

  // Only the loop thread touches `order` and `remaining` until `all_ran`.
  std::vector<std::pair<int, int>> order;
  int remaining = kThreads * kPerThread;
  absl::Notification all_ran;
  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t) {
    posters.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        loop->Post([&, t, i] {
          order.emplace_back(t, i);
          if (--remaining == 0) all_ran.Notify();
        });
      }
    });
  }
  for (auto& p : posters) p.join();
  ASSERT_TRUE(all_ran.WaitForNotificationWithTimeout(kWait));
  Flush(*loop);  // nothing extra runs after the last expected closure

  ASSERT_EQ(order.size(), static_cast<size_t>(kThreads * kPerThread));
  std::vector<int> next(kThreads, 0);
  for (const auto& [t, i] : order) {
    ASSERT_EQ(i, next[t]) << "thread " << t << " out of order or repeated";
    ++next[t];
  }
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(next[t], kPerThread);
}

TEST(EventLoopTest, ClosurePostedFromLoopThreadRunsAfterCurrentOne) {
  auto loop = StartLoop();
  ASSERT_NE(loop, nullptr);
  std::vector<std::string> order;
  absl::Notification done;
  loop->Post([&] {
    loop->Post([&] {
      order.push_back("inner");
      done.Notify();
    });
    order.push_back("outer");
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  EXPECT_THAT(order, ElementsAre("outer", "inner"));
}

TEST(EventLoopTest, RunAfterFiresAfterItsDelayInDelayOrder) {
  auto loop = StartLoop();
  ASSERT_NE(loop, nullptr);
  struct Fired {
    int id;
    SteadyTime at;
    bool in_loop;
  };
  std::vector<Fired> fired;  // loop thread only until `done`
  absl::Notification done;
  const absl::Duration delays[] = {
      absl::Milliseconds(60), absl::Milliseconds(20), absl::Milliseconds(40)};
  const SteadyTime start = std::chrono::steady_clock::now();
  for (int id = 0; id < 3; ++id) {
    loop->RunAfter(delays[id], [&, id] {
      fired.push_back(
          {id, std::chrono::steady_clock::now(), loop->InLoopThread()});
      if (fired.size() == 3) done.Notify();
    });
  }
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  ASSERT_EQ(fired.size(), 3u);
  EXPECT_EQ(fired[0].id, 1);
  EXPECT_EQ(fired[1].id, 2);
  EXPECT_EQ(fired[2].id, 0);
  for (const Fired& f : fired) {
    EXPECT_TRUE(f.in_loop);
    EXPECT_GE(Since(start, f.at), delays[f.id])
        << "timer " << f.id << " fired early";
  }
}

// The loop caches the time once per wake-up; a timer armed after a long
// callback in the same wake-up must still wait its whole delay.
TEST(EventLoopTest, RunAfterFromBusyCallbackWaitsItsWholeDelay) {
  auto loop = StartLoop();
  ASSERT_NE(loop, nullptr);
  constexpr absl::Duration kDelay = absl::Milliseconds(30);
  SteadyTime armed;
  SteadyTime fired;
  absl::Notification done;
  loop->Post([&] {
    // Simulates a slow callback (the loop is busy, not waiting for a result).
    absl::SleepFor(absl::Milliseconds(50));
    armed = std::chrono::steady_clock::now();
    loop->RunAfter(kDelay, [&] {
      fired = std::chrono::steady_clock::now();
      done.Notify();
    });
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  EXPECT_GE(Since(armed, fired), kDelay);
}

TEST(EventLoopTest, RunAfterWithZeroOrNegativeDelayRunsSoon) {
  auto loop = StartLoop();
  ASSERT_NE(loop, nullptr);
  absl::Notification zero;
  absl::Notification negative;
  loop->RunAfter(absl::ZeroDuration(), [&] { zero.Notify(); });
  loop->RunAfter(absl::Seconds(-5), [&] { negative.Notify(); });
  EXPECT_TRUE(zero.WaitForNotificationWithTimeout(kWait));
  EXPECT_TRUE(negative.WaitForNotificationWithTimeout(kWait));
}

TEST(EventLoopTest, ClosuresPostedAfterStopNeverRunAndAreDestroyed) {
  auto loop = StartLoop();
  ASSERT_NE(loop, nullptr);
  Flush(*loop);
  loop->Stop();
  loop->Stop();  // idempotent

  std::atomic<int> ran{0};
  auto sentinel = std::make_shared<int>(0);
  for (int i = 0; i < 10; ++i) {
    loop->Post([&ran, sentinel] { ++ran; });
  }
  loop->RunAfter(absl::ZeroDuration(), [&ran, sentinel] { ++ran; });
  EXPECT_GT(sentinel.use_count(), 1);  // still queued
  loop.reset();
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(sentinel.use_count(), 1) << "queued closures leaked";
}

TEST(EventLoopTest, DestructorDestroysPendingTimersWithoutRunningThem) {
  auto loop = StartLoop();
  ASSERT_NE(loop, nullptr);
  std::atomic<int> ran{0};
  auto sentinel = std::make_shared<int>(0);
  loop->RunAfter(absl::Hours(1), [&ran, sentinel] { ++ran; });
  loop->RunAfter(absl::Hours(2), [&ran, sentinel] { ++ran; });
  Flush(*loop);  // both timers are armed now
  EXPECT_EQ(sentinel.use_count(), 3);
  loop.reset();
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(sentinel.use_count(), 1) << "pending timer closures leaked";
}

// Stop() right after Start() must not lose the stop request, whatever point
// the loop thread has reached.
TEST(EventLoopTest, StopRightAfterStartReturns) {
  absl::Notification finished;
  std::thread runner([&finished] {
    for (int i = 0; i < 200; ++i) {
      auto loop = EventLoop::Start("test-loop");
      if (!loop.ok()) break;
      (*loop)->Stop();
    }
    finished.Notify();
  });
  if (!finished.WaitForNotificationWithTimeout(absl::Seconds(30))) {
    runner.detach();  // hung in Stop(); the process exits with the failure
    FAIL() << "EventLoop::Stop() hung";
  }
  runner.join();
}

TEST(EventLoopTest, DestroyingLoopWithQueuedWorkReturns) {
  absl::Notification finished;
  std::thread runner([&finished] {
    for (int i = 0; i < 50; ++i) {
      auto loop = EventLoop::Start("test-loop");
      if (!loop.ok()) break;
      for (int j = 0; j < 100; ++j) (*loop)->Post([] {});
    }
    finished.Notify();
  });
  if (!finished.WaitForNotificationWithTimeout(absl::Seconds(30))) {
    runner.detach();
    FAIL() << "~EventLoop() hung";
  }
  runner.join();
}

TEST(WorkerPoolTest, RunsWorkOnPoolThreadsConcurrently) {
  WorkerPool pool(2);
  EXPECT_EQ(pool.size(), 2);
  // Each job waits for the other: only two threads running at once pass.
  absl::Notification first_started;
  absl::Notification second_started;
  absl::Notification both_done_a;
  absl::Notification both_done_b;
  std::thread::id a_thread;
  std::thread::id b_thread;
  pool.Submit([&] {
    a_thread = std::this_thread::get_id();
    first_started.Notify();
    if (second_started.WaitForNotificationWithTimeout(kWait))
      both_done_a.Notify();
  });
  pool.Submit([&] {
    b_thread = std::this_thread::get_id();
    second_started.Notify();
    if (first_started.WaitForNotificationWithTimeout(kWait))
      both_done_b.Notify();
  });
  ASSERT_TRUE(both_done_a.WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(both_done_b.WaitForNotificationWithTimeout(kWait));
  EXPECT_NE(a_thread, b_thread);
  EXPECT_NE(a_thread, std::this_thread::get_id());
}

TEST(WorkerPoolTest, DestructorRunsAllQueuedWork) {
  constexpr int kJobs = 2000;
  std::atomic<int> ran{0};
  {
    WorkerPool pool(2);
    absl::Notification gate;
    // Both workers are parked until just before the destructor starts, so
    // nearly all jobs are still queued when it does.
    for (int i = 0; i < 2; ++i) {
      pool.Submit([&gate] { gate.WaitForNotificationWithTimeout(kWait); });
    }
    for (int i = 0; i < kJobs; ++i) pool.Submit([&ran] { ++ran; });
    gate.Notify();
  }
  EXPECT_EQ(ran.load(), kJobs);
}

TEST(WorkerPoolTest, WorkSubmittedByQueuedWorkDuringShutdownRuns) {
  std::atomic<int> ran{0};
  {
    WorkerPool pool(1);
    pool.Submit([&] {
      ++ran;
      pool.Submit([&] { ++ran; });
    });
  }
  EXPECT_EQ(ran.load(), 2);
}

// Parks the pool's only worker until `gate` is notified.
void BlockWorker(WorkerPool& pool, absl::Notification& started,
                 absl::Notification& gate) {
  pool.Submit([&] {
    started.Notify();
    gate.WaitForNotificationWithTimeout(kWait);
  });
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(kWait));
}

TEST(WorkerPoolTest, AdmissionRefusedAtOnceWhenQueueIsFull) {
  FakeClock clock;
  WorkerPool pool(1, /*max_queued=*/2, &clock);
  absl::Notification started, gate;
  BlockWorker(pool, started, gate);
  const absl::Time deadline = clock.Now() + absl::Seconds(10);
  std::atomic<int> ran{0};
  pool.Admit(deadline, [&](WorkerPool::Admission a) {
    if (a == WorkerPool::Admission::kRun) ++ran;
  });
  pool.Submit([&] { ++ran; });  // a step of an admitted call: always queued
  EXPECT_EQ(pool.queued(), 2u);
  // Full: answered on this thread before Admit returns, nothing queued.
  std::optional<WorkerPool::Admission> third;
  std::thread::id third_thread;
  pool.Admit(deadline, [&](WorkerPool::Admission a) {
    third = a;
    third_thread = std::this_thread::get_id();
  });
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(*third, WorkerPool::Admission::kQueueFull);
  EXPECT_EQ(third_thread, std::this_thread::get_id());
  EXPECT_EQ(pool.queued(), 2u);
  // Continuations are never refused (the calls in flight bound them).
  pool.Submit([&] { ++ran; });
  EXPECT_EQ(pool.queued(), 3u);
  gate.Notify();
  for (int i = 0; i < 500 && ran.load() < 3; ++i) absl::SleepFor(kTick);
  EXPECT_EQ(ran.load(), 3);
  EXPECT_EQ(pool.queued(), 0u);
}

TEST(WorkerPoolTest, AdmissionWhoseDeadlinePassedWhileQueuedIsExpired) {
  FakeClock clock;
  WorkerPool pool(1, /*max_queued=*/10, &clock);
  absl::Notification started, gate;
  BlockWorker(pool, started, gate);
  absl::Mutex mu;
  std::vector<std::pair<std::string, WorkerPool::Admission>> got;
  auto record = [&](std::string name) {
    return [&, name](WorkerPool::Admission a) {
      absl::MutexLock lock(&mu);
      got.emplace_back(name, a);
    };
  };
  pool.Admit(clock.Now() + absl::Seconds(1), record("short"));
  pool.Admit(clock.Now() + absl::Seconds(60), record("long"));
  // Both are queued with time left; the worker is busy past the first
  // deadline.
  clock.Advance(absl::Seconds(2));
  gate.Notify();
  for (int i = 0; i < 500; ++i) {
    {
      absl::MutexLock lock(&mu);
      if (got.size() == 2) break;
    }
    absl::SleepFor(kTick);
  }
  absl::MutexLock lock(&mu);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].first, "short");
  EXPECT_EQ(got[0].second, WorkerPool::Admission::kExpired);
  EXPECT_EQ(got[1].first, "long");
  EXPECT_EQ(got[1].second, WorkerPool::Admission::kRun);
}

TEST(WorkerPoolTest, AdmissionRefusedWhenRecentWaitExceedsHalfItsTimeLeft) {
  FakeClock clock;
  WorkerPool pool(1, /*max_queued=*/100, &clock);
  std::atomic<int> ran{0};
  auto count = [&](WorkerPool::Admission a) {
    if (a == WorkerPool::Admission::kRun) ++ran;
  };
  {
    // One admission waits 8 s: the average wait becomes 1 s (1/8).
    absl::Notification started, gate;
    BlockWorker(pool, started, gate);
    pool.Admit(clock.Now() + absl::Seconds(60), count);
    clock.Advance(absl::Seconds(8));
    gate.Notify();
    for (int i = 0; i < 500 && ran.load() < 1; ++i) absl::SleepFor(kTick);
    ASSERT_EQ(ran.load(), 1);
  }
  absl::Notification started, gate;
  BlockWorker(pool, started, gate);
  // Nothing waits: admitted whatever the average says.
  pool.Admit(clock.Now() + absl::Milliseconds(1500), count);
  EXPECT_EQ(pool.queued(), 1u);
  // Admissions wait, 2 x 1 s > 1.5 s left: refused at once.
  std::optional<WorkerPool::Admission> refused;
  pool.Admit(clock.Now() + absl::Milliseconds(1500),
             [&](WorkerPool::Admission a) { refused = a; });
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(*refused, WorkerPool::Admission::kQueueFull);
  // 2 x 1 s <= 3 s left: queued.
  pool.Admit(clock.Now() + absl::Seconds(3), count);
  EXPECT_EQ(pool.queued(), 2u);
  gate.Notify();
  for (int i = 0; i < 500 && ran.load() < 3; ++i) absl::SleepFor(kTick);
  EXPECT_EQ(ran.load(), 3);
}

TEST(WorkerPoolTest, StepsOfAdmittedCallsRunBeforeWaitingAdmissions) {
  FakeClock clock;
  WorkerPool pool(1, /*max_queued=*/10, &clock);
  absl::Notification started, gate;
  BlockWorker(pool, started, gate);
  absl::Mutex mu;
  std::vector<std::string> order;
  auto note = [&](const char* what) {
    absl::MutexLock lock(&mu);
    order.push_back(what);
  };
  pool.Admit(clock.Now() + absl::Seconds(10),
             [&](WorkerPool::Admission) { note("admission"); });
  pool.Submit([&] { note("step"); });
  gate.Notify();
  for (int i = 0; i < 500; ++i) {
    {
      absl::MutexLock lock(&mu);
      if (order.size() == 2) break;
    }
    absl::SleepFor(kTick);
  }
  absl::MutexLock lock(&mu);
  EXPECT_THAT(order, ::testing::ElementsAre("step", "admission"));
}

TEST(WorkerPoolTest, UnboundedWhenMaxQueuedIsZero) {
  FakeClock clock;
  std::atomic<int> ran{0};
  {
    WorkerPool pool(1, /*max_queued=*/0, &clock);
    absl::Notification started, gate;
    BlockWorker(pool, started, gate);
    for (int i = 0; i < 5000; ++i) {
      pool.Admit(clock.Now() + absl::Seconds(10), [&](WorkerPool::Admission a) {
        if (a == WorkerPool::Admission::kRun) ++ran;
      });
    }
    gate.Notify();
  }
  EXPECT_EQ(ran.load(), 5000);
}

TEST(FakeClockTest, StartsAtGivenTimeAndMovesOnlyByHand) {
  const absl::Time start = absl::FromUnixSeconds(1000);
  FakeClock clock(start);
  EXPECT_EQ(clock.Now(), start);
  EXPECT_EQ(clock.Now(), start);
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(clock.Now(), start + absl::Seconds(5));
  clock.Set(absl::FromUnixSeconds(42));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(42));
}

TEST(FakeClockTest, DefaultStartIsFixed) {
  FakeClock a;
  FakeClock b;
  EXPECT_EQ(a.Now(), b.Now());
  EXPECT_EQ(a.Now(), absl::FromUnixSeconds(1767225600));
  const Clock& clock = a;
  EXPECT_EQ(clock.Now(), a.Now());
}

TEST(RealClockTest, ReadsSystemTime) {
  const absl::Time before = absl::Now();
  const absl::Time now = RealClock::Get().Now();
  EXPECT_GE(now, before);
  EXPECT_LE(now, absl::Now());
  EXPECT_EQ(&RealClock::Get(), &RealClock::Get());
}

}  // namespace
}  // namespace payorch
