#ifndef PAYORCH_COMMON_EVENT_LOOP_H_
#define PAYORCH_COMMON_EVENT_LOOP_H_

// payorch's threading model (see service/README.md):
// - gRPC's callback API hands requests in on gRPC's own small thread pool;
//   handlers never block: they start asynchronous work and return.
// - EventLoop threads drive every socket payorch opens itself: one runs
//   libcurl's multi interface (PayKKa), another hiredis's async API (Redis),
//   both on libevent. Completion callbacks run on these threads and on the
//   worker pool; they must be short.
// - A small WorkerPool runs CPU work (RSA signing and verifying) off the loops,
//   and the first step of every call, from a bounded queue.
// So the number of threads is fixed, whatever the number of calls in flight.

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

struct event_base;
struct event;

namespace payorch {

// A libevent event_base run by one dedicated thread. Thread-safe: Post() and
// RunAfter() may be called from any thread; base() must only be used on the
// loop thread (or before Start()).
class EventLoop {
 public:
  // Creates the base and starts its thread. kInternal if libevent fails.
  static absl::StatusOr<std::unique_ptr<EventLoop>> Start(std::string name);
  // Stops the loop and joins the thread. Closures still queued are destroyed
  // without running.
  ~EventLoop();

  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  event_base* base() const { return base_; }
  // Runs `fn` on the loop thread, soon. FIFO among Post() calls. Post,
  // RunAfter and WorkerPool::Submit run `fn` under the trace that was
  // current when it was queued (common/trace_context.h).
  void Post(absl::AnyInvocable<void()> fn);
  // Runs `fn` on the loop thread after `delay`.
  void RunAfter(absl::Duration delay, absl::AnyInvocable<void()> fn);
  bool InLoopThread() const;
  // Stops the loop and joins the thread (idempotent; not from the loop thread).
  void Stop();

 private:
  EventLoop() = default;
  static void OnWake(int fd, short what, void* arg);
  void Drain();

  event_base* base_ = nullptr;
  event* wake_ = nullptr;
  std::thread thread_;
  std::thread::id thread_id_;
  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool wake_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ = false;
};

// Time source, injectable so logic tests never read the real clock.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// The system clock.
class RealClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  static const Clock& Get();
};

// A clock tests move by hand. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1767225600))
      : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  void Set(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = t;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

// A fixed pool of threads for CPU-bound work, fed by one bounded queue.
// Thread-safe. Two kinds of work:
// - Submit(): a step of a call already admitted (signing, verifying). Always
//   queued (the calls in flight bound it) and run before any waiting
//   admission, so started calls finish first under overload.
// - Admit(): a new call's first step. Refused when `max_queued` items (of
//   either kind) already wait, or when admissions are waiting and their
//   recent wait (a moving average) is more than half the time the call has
//   left: it would likely expire in the queue or right after. Told at
//   dequeue when its deadline has passed, so the caller answers at once
//   instead of starting work nobody waits for.
class WorkerPool {
 public:
  enum class Admission {
    kRun,        // on a worker, deadline not passed: do the work
    kQueueFull,  // at once, on the caller's thread: nothing was queued
                 // (queue full, or too slow for the call's deadline)
    kExpired,    // on a worker: the deadline passed while queued
  };

  // `max_queued` 0: no bound. `clock` (not owned) reads deadlines.
  // `deadline_aware` false: admissions are refused only when full.
  explicit WorkerPool(int threads, size_t max_queued = 0,
                      const Clock* clock = &RealClock::Get(),
                      bool deadline_aware = true);
  // Runs queued work to completion (admissions as kRun or kExpired), then
  // joins.
  ~WorkerPool();
  void Submit(absl::AnyInvocable<void()> fn);
  // Runs `fn` exactly once with the Admission it got.
  void Admit(absl::Time deadline, absl::AnyInvocable<void(Admission) &&> fn);
  int size() const { return static_cast<int>(threads_.size()); }
  // Items waiting (both kinds).
  size_t queued() const;

 private:
  struct Admitted {
    absl::Time deadline;
    absl::Time queued_at;
    absl::AnyInvocable<void(Admission) &&> fn;
  };
  bool Accepts(absl::Time now, absl::Time deadline) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void Run();
  bool HasWorkOrStopping() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return stopping_ || !queue_.empty() || !admissions_.empty();
  }
  const size_t max_queued_;
  const Clock* const clock_;
  const bool deadline_aware_;
  mutable absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void()>> queue_ ABSL_GUARDED_BY(mu_);
  std::deque<Admitted> admissions_ ABSL_GUARDED_BY(mu_);
  // Moving average (1/8 per sample) of how long admissions waited.
  absl::Duration recent_wait_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace payorch

#endif  // PAYORCH_COMMON_EVENT_LOOP_H_
