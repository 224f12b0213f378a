#include "service/reconciler.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <deque>
#include <future>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/errors.h"
#include "payorch/internal/stored_outcome.pb.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace payorch::service {
namespace {

using cache::Claim;
using cache::UnsettledEntry;

// PayKKa has no object under the trans_id (ORDER_NOT_FOUND or
// SESSION_NOT_FOUND: the lookup's only NOT_FOUND answers).
bool NothingAtPaykka(const absl::Status& s) {
  return s.code() == absl::StatusCode::kNotFound;
}

// The reconciler's metrics (no-ops without a registry).
struct Metrics {
  explicit Metrics(prometheus::Registry* registry) {
    if (registry == nullptr) return;
    unsettled = &prometheus::BuildGauge()
                     .Name("payorch_unsettled_records")
                     .Help(
                         "Idempotency records whose PayKKa outcome is not "
                         "settled yet (last reconciler pass).")
                     .Register(*registry)
                     .Add({});
    oldest = &prometheus::BuildGauge()
                  .Name("payorch_unsettled_oldest_age_seconds")
                  .Help("Age of the oldest unsettled record (last pass).")
                  .Register(*registry)
                  .Add({});
    entries = &prometheus::BuildGauge()
                   .Name("payorch_unsettled_index_entries")
                   .Help(
                       "Entries in the unsettled index, settled ones not "
                       "yet removed included (last pass).")
                   .Register(*registry)
                   .Add({});
    settled = &prometheus::BuildCounter()
                   .Name("payorch_reconciler_settled_total")
                   .Help("Records settled by the reconciler, by result.")
                   .Register(*registry);
    passes = &prometheus::BuildCounter()
                  .Name("payorch_reconciler_passes_total")
                  .Help("Completed passes over the unsettled index.")
                  .Register(*registry)
                  .Add({});
  }
  void Settled(const char* result) {
    if (settled != nullptr) settled->Add({{"result", result}}).Increment();
  }

  prometheus::Gauge* unsettled = nullptr;
  prometheus::Gauge* oldest = nullptr;
  prometheus::Gauge* entries = nullptr;
  prometheus::Family<prometheus::Counter>* settled = nullptr;
  prometheus::Counter* passes = nullptr;
};

}  // namespace

class Reconciler::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(EventLoop* loop, cache::UnsettledIndex* index,
       cache::IdempotencyStore* store, ReconcileLookup lookup,
       prometheus::Registry* registry, ReconcilerOptions options)
      : loop_(loop),
        index_(index),
        store_(store),
        lookup_(std::move(lookup)),
        metrics_(registry),
        options_(options),
        rng_(std::random_device{}()) {}

  void Start() {
    if (started_.exchange(true)) return;
    loop_->Post([self = shared_from_this()] { self->StartPass(); });
  }

  void Stop() {
    stopped_.store(true);
    if (!started_.load()) return;
    std::promise<void> barrier;
    loop_->Post([&barrier] { barrier.set_value(); });
    barrier.get_future().wait();
  }

 private:
  // A record being settled: its entry and, once claimed, the owner token.
  struct Work {
    UnsettledEntry entry;
    std::string owner;
    absl::Time quiet_until = absl::InfinitePast();  // the record's own
  };
  struct Backoff {
    absl::Time next;
    absl::Duration delay;
  };

  // Runs `fn(args...)` on the loop unless stopped: the completion of an
  // asynchronous call made on another thread.
  template <typename Arg, typename Fn>
  auto OnLoop(Fn fn) {
    return [self = shared_from_this(), fn = std::move(fn)](Arg arg) mutable {
      self->loop_->Post(
          [self, fn = std::move(fn), arg = std::move(arg)]() mutable {
            if (self->stopped_.load()) return;
            fn(std::move(arg));
          });
    };
  }

  // Redis time, estimated from the last page read.
  absl::Time RedisNow() const { return absl::Now() + redis_offset_; }

  // A pass: lists the indexes (one per slot with entries, found on every
  // primary), then walks them from a random one.
  void StartPass() {
    if (stopped_.load()) return;
    index_->List(OnLoop<absl::StatusOr<cache::UnsettledIndexes>>(
        [this](absl::StatusOr<cache::UnsettledIndexes> found) {
          OnList(std::move(found));
        }));
  }

  void OnList(absl::StatusOr<cache::UnsettledIndexes> found) {
    unsettled_ = 0;
    index_entries_ = 0;
    oldest_ = absl::InfiniteFuture();
    if (!found.ok()) {
      // Redis is down: nothing can be settled; try again next pass.
      std::fprintf(stderr, "payorchd: reconciler: %s\n",
                   found.status().ToString().c_str());
      return EndPass();
    }
    indexes_ = std::move(found->names);
    const int n = static_cast<int>(indexes_.size());
    first_index_ =
        n == 0 ? 0 : std::uniform_int_distribution<int>(0, n - 1)(rng_);
    index_step_ = 0;
    offset_ = 0;
    ScanNext();
  }

  void ScanNext() {
    const int n = static_cast<int>(indexes_.size());
    if (index_step_ >= n) return EndPass();
    const std::string& index = indexes_[(first_index_ + index_step_) % n];
    index_->Scan(index, offset_, options_.page_size,
                 OnLoop<absl::StatusOr<cache::UnsettledPage>>(
                     [this](absl::StatusOr<cache::UnsettledPage> page) {
                       OnPage(std::move(page));
                     }));
  }

  void OnPage(absl::StatusOr<cache::UnsettledPage> page) {
    if (!page.ok()) {
      // Redis is down: nothing can be settled; try again next pass.
      std::fprintf(stderr, "payorchd: reconciler: %s\n",
                   page.status().ToString().c_str());
      return EndPass();
    }
    redis_offset_ = page->now - absl::Now();
    if (offset_ == 0) index_entries_ += page->total;
    page_full_ = static_cast<int>(page->entries.size()) >= options_.page_size;
    page_kept_ = 0;
    for (UnsettledEntry& entry : page->entries) {
      if (page->now - entry.added < options_.grace) {
        ++page_kept_;
        continue;
      }
      auto b = backoff_.find(entry.field);
      if (b != backoff_.end() && b->second.next > page->now) {
        ++page_kept_;
        CountUnsettled(entry);
        continue;
      }
      queue_.push_back(std::make_shared<Work>(Work{std::move(entry), ""}));
    }
    Pump();
  }

  // Settles queued records, at most max_concurrent at once; when the page is
  // done, reads the next page or index.
  void Pump() {
    while (active_ < std::max(1, options_.max_concurrent) && !queue_.empty()) {
      std::shared_ptr<Work> work = std::move(queue_.front());
      queue_.pop_front();
      ++active_;
      Claim(std::move(work));
    }
    if (active_ > 0 || !queue_.empty()) return;
    if (page_full_) {
      offset_ += page_kept_;  // removed entries moved the rest up
    } else {
      ++index_step_;
      offset_ = 0;
    }
    ScanNext();
  }

  void EndPass() {
    if (metrics_.unsettled != nullptr) {
      metrics_.unsettled->Set(unsettled_);
      metrics_.entries->Set(static_cast<double>(index_entries_));
      metrics_.oldest->Set(oldest_ == absl::InfiniteFuture()
                               ? 0
                               : absl::ToDoubleSeconds(RedisNow() - oldest_));
      metrics_.passes->Increment();
    }
    if (stopped_.load()) return;
    loop_->RunAfter(options_.scan_interval,
                    [self = shared_from_this()] { self->StartPass(); });
  }

  void CountUnsettled(const UnsettledEntry& entry) {
    ++unsettled_;
    oldest_ = std::min(oldest_, entry.added);
  }

  // One record's walk; every path ends in Done().
  void Claim(std::shared_ptr<Work> work) {
    cache::BeginArgs args;
    args.fingerprint = work->entry.fingerprint;
    args.lease = options_.lease;
    args.request = work->entry.request;
    args.settling = true;  // the entry keeps its time: no new attempt
    store_->Begin(work->entry.key, args,
                  OnLoop<absl::StatusOr<cache::Claim>>(
                      [this, work](absl::StatusOr<cache::Claim> claim) mutable {
                        OnClaim(std::move(work), std::move(claim));
                      }));
  }

  void OnClaim(std::shared_ptr<Work> work, absl::StatusOr<cache::Claim> claim) {
    if (!claim.ok()) return Unsettled(work, /*failed=*/true);
    switch (claim->outcome) {
      case Claim::Outcome::kCompleted:
      case Claim::Outcome::kMismatch:
      case Claim::Outcome::kOtherFamily:
        // Settled, or the record is another request's (with its own entry).
        return RemoveEntry(std::move(work));
      case Claim::Outcome::kInProgress:
        // A live call, or another replica settling it.
        return Unsettled(work, /*failed=*/false);
      case Claim::Outcome::kAcquired:
        break;
    }
    work->owner = std::move(claim->owner_token);
    work->quiet_until = RedisNow() + claim->quiet_left;
    const absl::Duration margin =
        std::min(absl::Seconds(2), options_.lease / 4);
    const absl::Time deadline = absl::Now() + std::min(options_.paykka_timeout,
                                                       options_.lease - margin);
    lookup_(work->entry, deadline,
            OnLoop<absl::StatusOr<std::string>>(
                [this, work](absl::StatusOr<std::string> found) mutable {
                  OnLookup(std::move(work), std::move(found));
                }));
  }

  void OnLookup(std::shared_ptr<Work> work, absl::StatusOr<std::string> found) {
    const UnsettledEntry& e = work->entry;
    if (found.ok()) {
      internal::StoredOutcome record;
      const char* result = record.ParseFromString(*found) && record.has_error()
                               ? "trans_id_reused"
                               : "adopted";
      return store_->Complete(
          e.key, work->owner, *found, options_.retention,
          OnLoop<absl::Status>([this, work, result](absl::Status s) mutable {
            if (!s.ok()) return Unsettled(work, /*failed=*/true);
            Settled(work, result);  // Complete removed the entry
          }));
    }
    const absl::Time quiet_until = std::max(
        work->quiet_until, e.added + options_.lease + options_.paykka_timeout);
    if (NothingAtPaykka(found.status()) && RedisNow() >= quiet_until) {
      // Release() would put an unsettled claim back to UNKNOWN: PayKKa's
      // answer settles it as "never happened".
      return store_->Forget(
          e.key, work->owner,
          OnLoop<absl::Status>([this, work](absl::Status s) mutable {
            if (!s.ok()) return Unsettled(work, /*failed=*/true);
            Settled(work, "not_found");  // Forget removed the entry
          }));
    }
    // Not answered, or not found while PayKKa may still be processing the
    // last attempt: keep the UNKNOWN marker and ask again later.
    store_->MarkUnknown(
        e.key, work->owner,
        OnLoop<absl::Status>([this, work](absl::Status) mutable {
          Unsettled(work, /*failed=*/true);
        }));
  }

  // Settled by Complete or Forget, whose scripts removed the entry.
  void Settled(const std::shared_ptr<Work>& work, const char* result) {
    metrics_.Settled(result);
    backoff_.erase(work->entry.field);
    Done();
  }

  // Removes a stale entry (its record settled, or another request's) unless
  // re-added meanwhile.
  void RemoveEntry(std::shared_ptr<Work> work) {
    backoff_.erase(work->entry.field);
    index_->Remove(work->entry, OnLoop<absl::StatusOr<bool>>(
                                    [this](absl::StatusOr<bool> removed) {
                                      if (!removed.ok() || !*removed)
                                        ++page_kept_;
                                      Done();
                                    }));
  }

  void Unsettled(const std::shared_ptr<Work>& work, bool failed) {
    CountUnsettled(work->entry);
    ++page_kept_;
    if (failed) {
      Backoff& b = backoff_[work->entry.field];
      b.delay = b.delay <= absl::ZeroDuration()
                    ? options_.initial_backoff
                    : std::min(b.delay * 2, options_.max_backoff);
      b.next = RedisNow() + b.delay;
    }
    Done();
  }

  void Done() {
    --active_;
    Pump();
  }

  EventLoop* const loop_;
  cache::UnsettledIndex* const index_;
  cache::IdempotencyStore* const store_;
  ReconcileLookup lookup_;
  Metrics metrics_;
  const ReconcilerOptions options_;
  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};

  // Loop thread only.
  std::mt19937 rng_;
  absl::Duration redis_offset_;
  std::vector<std::string> indexes_;
  int first_index_ = 0;
  int index_step_ = 0;
  int64_t offset_ = 0;
  bool page_full_ = false;
  int64_t page_kept_ = 0;
  std::deque<std::shared_ptr<Work>> queue_;
  int active_ = 0;
  int unsettled_ = 0;
  int64_t index_entries_ = 0;
  absl::Time oldest_;
  absl::flat_hash_map<std::string, Backoff> backoff_;
};

Reconciler::Reconciler(EventLoop* loop, cache::UnsettledIndex* index,
                       cache::IdempotencyStore* store, ReconcileLookup lookup,
                       prometheus::Registry* registry,
                       ReconcilerOptions options)
    : impl_(std::make_shared<Impl>(loop, index, store, std::move(lookup),
                                   registry, options)) {}

Reconciler::~Reconciler() { Stop(); }

void Reconciler::Start() { impl_->Start(); }

void Reconciler::Stop() { impl_->Stop(); }

}  // namespace payorch::service
