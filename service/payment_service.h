#ifndef PAYORCH_SERVICE_PAYMENT_SERVICE_H_
#define PAYORCH_SERVICE_PAYMENT_SERVICE_H_

// The orchestration logic behind the four RPCs, independent of gRPC:
// validation, merchant lookup, the idempotency flow of docs/architecture.md's
// table for the mutating RPCs, and the mapping of PayKKa's answers to ours. The
// gRPC edge (grpc_service.h) only converts the Outcome to a grpc::Status and
// logs.
//
// Threading: every method returns at once; `done` runs exactly once, on
// whichever thread completed the last asynchronous step (an adapter or store
// callback thread, or the caller's thread when nothing asynchronous was
// needed). No thread waits for PayKKa or Redis. See service/README.md.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "adapters/paykka/paykka_client.h"
#include "cache/idempotency_store.h"
#include "cache/unsettled_index.h"
#include "common/event_loop.h"
#include "payorch/v1/payorch.pb.h"
#include "service/merchant_directory.h"

namespace payorch::service {

// What happened during one call, for the edge's log line and metrics.
struct CallInfo {
  // Time spent waiting for PayKKa, summed over the calls made.
  absl::Duration upstream_latency = absl::ZeroDuration();
  // PayKKa calls made (queries and creates).
  int upstream_calls = 0;
  // The answer came from the idempotency record (no PayKKa call).
  bool replayed = false;
  // A store operation after PayKKa answered failed (e.g. Complete() lost its
  // lease); the caller still got PayKKa's answer. Empty when none.
  std::string store_error;
};

// The answer to one call.
template <typename Response>
struct Outcome {
  // The response, or an error carrying a Reason (common/errors.h).
  absl::StatusOr<Response> result = absl::UnknownError("unset");
  // Set for a definitive rejection that the idempotency record holds, on the
  // first answer and on every replay: the serialized google.rpc.Status to
  // send as the error details unchanged, so every answer is byte-identical.
  // `result` then holds the same error (for logs and metrics).
  std::optional<std::string> rpc_status;
  CallInfo info;
};

template <typename Response>
using OutcomeCallback = absl::AnyInvocable<void(Outcome<Response>) &&>;

struct PaymentServiceOptions {
  // Lease of an in-flight claim. Must exceed the longest PayKKa call: the
  // upstream deadline of a mutating call is capped to lease - margin after
  // the claim, so a successor can never take over a live call.
  absl::Duration lease = absl::Seconds(30);
  // At most this, and at most a quarter of the lease.
  absl::Duration lease_margin = absl::Seconds(2);
  // Upper bound of one PayKKa call (queries and creates), whatever the
  // caller's deadline: a caller with a long deadline still gets a definite
  // answer (e.g. PSP_OUTCOME_UNKNOWN) from payorch rather than its own
  // DEADLINE_EXCEEDED.
  absl::Duration paykka_timeout = absl::Seconds(15);
  // How long a completed record is kept (docs/architecture.md: 48 h by
  // default).
  absl::Duration retention = absl::Hours(48);
  // RetryInfo for REQUEST_IN_PROGRESS: the live lease's remaining time,
  // clamped to [min_retry_delay, max_in_progress_retry_delay].
  absl::Duration max_in_progress_retry_delay = absl::Seconds(5);
  absl::Duration min_retry_delay = absl::Milliseconds(100);
  // RetryInfo for PSP_OUTCOME_UNKNOWN and IDEMPOTENCY_STORE_UNAVAILABLE.
  absl::Duration outcome_unknown_retry_delay = absl::Seconds(1);
  absl::Duration store_unavailable_retry_delay = absl::Seconds(1);
  // A Begin that failed with the store unavailable (e.g. its reply timed
  // out: it may have claimed) is sent once more with the same owner token
  // after this delay, on `timers`. Null `timers`: no retry.
  EventLoop* timers = nullptr;
  absl::Duration begin_retry_delay = absl::Milliseconds(300);
};

// INVALID_ARGUMENT unless retention > lease + paykka_timeout: a record must
// outlive the longest claim and the quiet period after an unknown outcome,
// or a retry could find it gone while PayKKa may still be processing.
absl::Status CheckPaymentServiceOptions(const PaymentServiceOptions& options);

// The reconciler's PayKKa lookup (service/reconciler.h ReconcileLookup): the
// adoption of service/adoption.h for the entry's stored request; answers the
// StoredOutcome bytes the record keeps: the response when PayKKa holds a
// matching object, the ALREADY_EXISTS TRANS_ID_REUSED refusal when it holds
// another kind or content (stored as the flow stores it); else NOT_FOUND
// (nothing under the trans_id, of either kind) or the query's error.
// The merchant's configuration in force when the lookup starts is kept until
// `done` runs.
void FindStoredOutcome(
    paykka::PaykkaClient* client, const MerchantDirectory& merchants,
    const cache::UnsettledEntry& entry, absl::Time deadline,
    absl::AnyInvocable<void(absl::StatusOr<std::string>) &&> done);

// Thread-safe. `client`, `store` and `clock` must outlive the service, and
// the service must outlive every call in flight (the server drains first).
class PaymentService {
 public:
  PaymentService(paykka::PaykkaClient* client, cache::IdempotencyStore* store,
                 MerchantDirectory merchants, const Clock* clock,
                 PaymentServiceOptions options = {});

  // Idempotent on (merchant_id, trans_id); docs/architecture.md's table.
  // Errors: INVALID_ARGUMENT INVALID_FIELD, FAILED_PRECONDITION
  // MERCHANT_NOT_CONFIGURED, UNAVAILABLE IDEMPOTENCY_STORE_UNAVAILABLE,
  // ALREADY_EXISTS TRANS_ID_REUSED, ABORTED REQUEST_IN_PROGRESS,
  // UNAVAILABLE PSP_OUTCOME_UNKNOWN, a stored PSP_REJECTED (rpc_status set),
  // and the adapter's not-sent errors (PSP_UNAVAILABLE, PSP_RATE_LIMITED,
  // PSP_AUTH_FAILED, DEADLINE_EXCEEDED), after which nothing is recorded.
  void CreateCheckout(const v1::CreateCheckoutRequest& request,
                      absl::Time deadline,
                      OutcomeCallback<v1::CreateCheckoutResponse> done);
  // As CreateCheckout; a card decline is OK with order.status FAILURE.
  void ChargeRecurring(const v1::ChargeRecurringRequest& request,
                       absl::Time deadline,
                       OutcomeCallback<v1::ChargeRecurringResponse> done);

  // After the payment (service/postpay.h). Each is idempotent on its own id
  // (refund_trans_id; request_id for the others) with CreateCheckout's
  // table, and checks the order's balances before PayKKa is asked:
  // FAILED_PRECONDITION REFUND_AMOUNT_EXCEEDED, CAPTURE_AMOUNT_EXCEEDED,
  // ORDER_NOT_CAPTURABLE, ORDER_NOT_VOIDABLE, CURRENCY_MISMATCH (not stored).
  // A refund PayKKa declines is OK with status FAILURE.
  void Refund(const v1::RefundRequest& request, absl::Time deadline,
              OutcomeCallback<v1::RefundResponse> done);
  void Capture(const v1::CaptureRequest& request, absl::Time deadline,
               OutcomeCallback<v1::CaptureResponse> done);
  void Void(const v1::VoidRequest& request, absl::Time deadline,
            OutcomeCallback<v1::VoidResponse> done);
  void CancelRecurring(const v1::CancelRecurringRequest& request,
                       absl::Time deadline,
                       OutcomeCallback<v1::CancelRecurringResponse> done);
  // Read-only. NOT_FOUND REFUND_NOT_FOUND when PayKKa has no such refund.
  void GetRefund(const v1::GetRefundRequest& request, absl::Time deadline,
                 OutcomeCallback<v1::GetRefundResponse> done);

  // Read-only; never touches the idempotency store. NOT_FOUND
  // ORDER_NOT_FOUND when PayKKa has no order; when looked up by session_id,
  // NOT_FOUND SESSION_EXPIRED if the session expired unpaid and
  // SESSION_NOT_FOUND if PayKKa does not know the session.
  void GetOrder(const v1::GetOrderRequest& request, absl::Time deadline,
                OutcomeCallback<v1::GetOrderResponse> done);
  // Read-only. An EXPIRED session is an OK answer.
  void GetSessionStatus(const v1::GetSessionStatusRequest& request,
                        absl::Time deadline,
                        OutcomeCallback<v1::GetSessionStatusResponse> done);

  // Internals shared with the per-call flows (payment_service.cc).
  struct Deps {
    paykka::PaykkaClient* client;
    cache::IdempotencyStore* store;
    const Clock* clock;
    PaymentServiceOptions options;
  };

 private:
  // The merchant's configuration, or FAILED_PRECONDITION
  // MERCHANT_NOT_CONFIGURED.
  absl::StatusOr<std::shared_ptr<const paykka::MerchantConfig>> Merchant(
      const std::string& merchant_id) const;

  // Validation result, merchant lookup, then the idempotent flow.
  template <typename Ops>
  void StartMutation(absl::Status invalid, const typename Ops::Request& request,
                     absl::Time deadline,
                     OutcomeCallback<typename Ops::Response> done);

  const Deps deps_;
  // Looked up once per call; a reload swaps it for later calls only.
  const MerchantDirectory merchants_;
};

}  // namespace payorch::service

#endif  // PAYORCH_SERVICE_PAYMENT_SERVICE_H_
