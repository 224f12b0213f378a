#ifndef PAYORCH_SERVICE_RECONCILER_H_
#define PAYORCH_SERVICE_RECONCILER_H_

// The background reconciler (a janitor): settles every idempotency record
// whose outcome is unknown without waiting for the caller to retry.
// service/README.md "Reconciler".
//
// Every replica runs one. Each pass lists the unsettled indexes
// (cache/unsettled_index.h: one per Cluster slot that has entries, found by
// SCAN on every primary) and walks them one by one, oldest entries first.
// An entry older than `grace` is claimed through the idempotency store's
// ordinary Begin() (so one replica at a time holds it, under the usual
// lease) and:
// - the record is COMPLETED, or belongs to another request: the (stale)
//   entry goes;
// - a live lease (a call in flight, or another replica settling it): left;
// - claimed (UNKNOWN, an expired lease, or an expired record; the claim
//   keeps the entry and its time): PayKKa is asked by trans_id. Found and
//   matching: adopted (stored as the replayable answer; Complete removes the
//   entry); another object under the trans_id: its TRANS_ID_REUSED refusal
//   stored, as a retry would. Not found: forgotten as "never happened"
//   (Forget removes record and entry) only after the quiet period (the
//   later of the record's own, set at MarkUnknown, and entry time + lease +
//   paykka_timeout, which bounds the last attempt's send time plus PayKKa's
//   processing time); before that, and on any other failure, it is marked
//   UNKNOWN again and retried with exponential backoff.
//
// Threading: all state lives on `loop`; store, index and PayKKa callbacks are
// posted back to it. No thread waits for I/O.

#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cache/idempotency_store.h"
#include "cache/unsettled_index.h"
#include "common/event_loop.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace payorch::service {

// Looks an entry's trans_id up at PayKKa and answers the StoredOutcome bytes
// to keep (payorch/internal/stored_outcome.proto: the adopted response, or a
// definitive refusal such as TRANS_ID_REUSED), NOT_FOUND (nothing under the
// trans_id), or another error (transient: ask again later). `done` may run
// on any thread.
using ReconcileLookup = absl::AnyInvocable<void(
    const cache::UnsettledEntry& entry, absl::Time deadline,
    absl::AnyInvocable<void(absl::StatusOr<std::string>) &&> done)>;

struct ReconcilerOptions {
  // Pause between two passes over the index.
  absl::Duration scan_interval = absl::Seconds(5);
  // Entries younger than this are left alone (their call is normally still
  // in flight). At least the lease, so an entry written just before a claim
  // is never taken for a stale one.
  absl::Duration grace = absl::Seconds(30);
  // The service's lease and PayKKa timeout (the quiet period is entry time
  // + lease + paykka_timeout) and record retention.
  absl::Duration lease = absl::Seconds(30);
  absl::Duration paykka_timeout = absl::Seconds(15);
  absl::Duration retention = cache::kDefaultRecordRetention;
  // Backoff per record after a failed settlement: initial, doubling, capped.
  absl::Duration initial_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Seconds(30);
  // Entries read per Scan, and records settled at once by this replica.
  int page_size = 100;
  int max_concurrent = 8;
};

class Reconciler {
 public:
  // `index`, `store` and `loop` must outlive the reconciler; `registry` may
  // be null (no metrics).
  Reconciler(EventLoop* loop, cache::UnsettledIndex* index,
             cache::IdempotencyStore* store, ReconcileLookup lookup,
             prometheus::Registry* registry, ReconcilerOptions options);
  // Stops.
  ~Reconciler();

  Reconciler(const Reconciler&) = delete;
  Reconciler& operator=(const Reconciler&) = delete;

  // Starts the passes (the first at once). Idempotent.
  void Start();
  // No pass starts after this, and no callback touches the index, the store
  // or the lookup any more (settlements in flight are abandoned: their
  // records' leases expire and another pass takes them). Not from `loop`.
  void Stop();

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace payorch::service

#endif  // PAYORCH_SERVICE_RECONCILER_H_
