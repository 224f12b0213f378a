#include "common/event_loop.h"

#include <event2/event.h>
#include <event2/thread.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "common/trace_context.h"

namespace payorch {
namespace {

// libevent must be told once, before any base exists, that bases are shared
// between threads (event_active from Post() callers).
void InitLibeventThreads() {
  static std::once_flag once;
  std::call_once(once, [] { evthread_use_pthreads(); });
}

struct TimerState {
  event* ev = nullptr;
  absl::AnyInvocable<void()> fn;
};

void OnTimer(int, short, void* arg) {
  auto* state = static_cast<TimerState*>(arg);
  absl::AnyInvocable<void()> fn = std::move(state->fn);
  event_free(state->ev);
  delete state;
  fn();
}

}  // namespace

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Start(std::string name) {
  InitLibeventThreads();
  std::unique_ptr<EventLoop> loop(new EventLoop());
  // libevent's default timer clock on Linux is CLOCK_MONOTONIC_COARSE, which
  // lags by up to a tick (~4 ms), so RunAfter() could fire before its delay.
  event_config* config = event_config_new();
  if (config == nullptr) return absl::InternalError("event_config_new failed");
  event_config_set_flag(config, EVENT_BASE_FLAG_PRECISE_TIMER);
  loop->base_ = event_base_new_with_config(config);
  event_config_free(config);
  if (loop->base_ == nullptr)
    return absl::InternalError("event_base_new failed");
  loop->wake_ =
      event_new(loop->base_, -1, EV_PERSIST, &EventLoop::OnWake, loop.get());
  if (loop->wake_ == nullptr) return absl::InternalError("event_new failed");
  EventLoop* self = loop.get();
  std::mutex started_mu;
  std::condition_variable started_cv;
  bool started = false;
  loop->thread_ = std::thread([self, name, &started_mu, &started_cv, &started] {
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    self->thread_id_ = std::this_thread::get_id();
    {
      std::lock_guard<std::mutex> lock(started_mu);
      started = true;
    }
    started_cv.notify_one();
    event_base_loop(self->base_, EVLOOP_NO_EXIT_ON_EMPTY);
  });
  std::unique_lock<std::mutex> lock(started_mu);
  started_cv.wait(lock, [&] { return started; });
  return loop;
}

EventLoop::~EventLoop() {
  Stop();
  if (wake_ != nullptr) event_free(wake_);
  if (base_ != nullptr) event_base_free(base_);
}

void EventLoop::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  // The loop thread breaks out itself (see Drain). event_base_loopbreak() from
  // here would be lost if the thread had not yet entered event_base_loop(),
  // which clears the break flag on entry; an active event is not.
  if (wake_ != nullptr) event_active(wake_, EV_READ, 0);
  if (thread_.joinable()) thread_.join();
  std::deque<absl::AnyInvocable<void()>> dropped;
  {
    absl::MutexLock lock(&mu_);
    dropped.swap(queue_);
  }
  dropped.clear();  // outside the lock: a closure's destructor may Post()
  // Timers still pending own their closures; libevent will not free them.
  if (base_ != nullptr) {
    std::vector<TimerState*> timers;
    event_base_foreach_event(
        base_,
        [](const event_base*, const event* ev, void* arg) {
          if (event_get_callback(ev) == &OnTimer) {
            static_cast<std::vector<TimerState*>*>(arg)->push_back(
                static_cast<TimerState*>(event_get_callback_arg(ev)));
          }
          return 0;
        },
        &timers);
    for (TimerState* state : timers) {
      event_free(state->ev);
      delete state;
    }
  }
}

bool EventLoop::InLoopThread() const {
  return std::this_thread::get_id() == thread_id_;
}

void EventLoop::Post(absl::AnyInvocable<void()> fn) {
  fn = BindTrace(std::move(fn));  // the request's trace travels with its work
  bool wake = false;
  {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(fn));
    if (!wake_pending_) {
      wake_pending_ = true;
      wake = true;
    }
  }
  if (wake) event_active(wake_, EV_READ, 0);
}

void EventLoop::RunAfter(absl::Duration delay, absl::AnyInvocable<void()> fn) {
  Post([this, delay, fn = BindTrace(std::move(fn))]() mutable {
    auto* state = new TimerState;
    state->fn = std::move(fn);
    state->ev = evtimer_new(base_, &OnTimer, state);
    // The loop caches the time once per wake-up; measure from now.
    event_base_update_cache_time(base_);
    timeval tv = absl::ToTimeval(std::max(delay, absl::ZeroDuration()));
    evtimer_add(state->ev, &tv);
  });
}

void EventLoop::OnWake(int, short, void* arg) {
  static_cast<EventLoop*>(arg)->Drain();
}

void EventLoop::Drain() {
  std::deque<absl::AnyInvocable<void()>> batch;
  bool stop = false;
  {
    absl::MutexLock lock(&mu_);
    batch.swap(queue_);
    wake_pending_ = false;
    stop = stopped_;
  }
  if (stop) {
    // Called from the loop thread, so it is not lost; `batch` is destroyed
    // without running.
    event_base_loopbreak(base_);
    return;
  }
  for (auto& fn : batch) fn();
}

WorkerPool::WorkerPool(int threads, size_t max_queued, const Clock* clock,
                       bool deadline_aware)
    : max_queued_(max_queued), clock_(clock), deadline_aware_(deadline_aware) {
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this, i] {
      std::string name = "payorch-cpu-" + std::to_string(i);
      pthread_setname_np(pthread_self(), name.c_str());
      Run();
    });
  }
}

WorkerPool::~WorkerPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (auto& t : threads_) t.join();
}

void WorkerPool::Submit(absl::AnyInvocable<void()> fn) {
  fn = BindTrace(std::move(fn));
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(fn));
}

void WorkerPool::Admit(absl::Time deadline,
                       absl::AnyInvocable<void(Admission) &&> fn) {
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    if (Accepts(now, deadline)) {
      admissions_.push_back(Admitted{deadline, now, BindTrace(std::move(fn))});
      return;
    }
  }
  std::move(fn)(Admission::kQueueFull);
}

bool WorkerPool::Accepts(absl::Time now, absl::Time deadline) const {
  if (max_queued_ != 0 && queue_.size() + admissions_.size() >= max_queued_) {
    return false;
  }
  // An empty admission queue says nothing about the wait: accept.
  return !deadline_aware_ || admissions_.empty() ||
         recent_wait_ * 2 <= deadline - now;
}

size_t WorkerPool::queued() const {
  absl::MutexLock lock(&mu_);
  return queue_.size() + admissions_.size();
}

void WorkerPool::Run() {
  for (;;) {
    absl::AnyInvocable<void()> fn;
    Admitted admitted;
    bool expired = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &WorkerPool::HasWorkOrStopping));
      if (!queue_.empty()) {
        fn = std::move(queue_.front());
        queue_.pop_front();
      } else if (!admissions_.empty()) {
        admitted = std::move(admissions_.front());
        admissions_.pop_front();
        const absl::Time now = clock_->Now();
        recent_wait_ += (now - admitted.queued_at - recent_wait_) / 8;
        expired = now >= admitted.deadline;
      } else {
        return;  // stopping and drained
      }
    }
    if (fn) {
      fn();
    } else {
      std::move(admitted.fn)(expired ? Admission::kExpired : Admission::kRun);
    }
  }
}

const Clock& RealClock::Get() {
  static const RealClock* clock = new RealClock();
  return *clock;
}

}  // namespace payorch
