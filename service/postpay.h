#ifndef PAYORCH_SERVICE_POSTPAY_H_
#define PAYORCH_SERVICE_POSTPAY_H_

// The mutating RPCs after the payment (Refund, Capture, Void,
// CancelRecurring): what MutationFlow (payment_service.cc) needs from each,
// with the same idempotency table as CreateCheckout.
//
// Create: the amount rules payorch can check before PayKKa is asked. Refund,
// Capture and Void first read the order (Query Transaction); a rule it
// breaks is answered as FAILED_PRECONDITION with its own reason and nothing
// is sent. Such a refusal is never stored (it is marked "not sent", so the
// claim is released): the balances move, and the same request may be valid
// later (e.g. after a refund FAILURE gives the amount back).
//
// Adopt: what PayKKa holds for the request's own id after an unknown
// outcome or a refusal (service/adoption.h's contract):
// - Refund: Refund Query by refund_trans_id; adopted when order, amount and
//   currency match, else TRANS_ID_REUSED.
// - Capture: PayKKa gives a capture no id of its own. payorch allows one
//   capture per order (a partial one releases the rest), so the order's
//   captured_amount tells: equal to the request's amount, adopted; zero or
//   another amount, not found (the create's checks then refuse it).
// - Void: the order is CANCELED: adopted.
// - CancelRecurring: PayKKa has no agreement query: never found, so after
//   the quiet period the cancellation is sent again (cancelling a canceled
//   agreement is a success; adapters/paykka maps PayKKa's "agreement not
//   active" to OK).

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "adapters/paykka/paykka_client.h"
#include "payorch/v1/payorch.pb.h"
#include "service/adoption.h"

namespace payorch::service {

using RefundAdoption = Adoption<v1::RefundResponse>;
using CaptureAdoption = Adoption<v1::CaptureResponse>;
using VoidAdoption = Adoption<v1::VoidResponse>;
using CancelRecurringAdoption = Adoption<v1::CancelRecurringResponse>;

// The rules against the order as PayKKa reports it. OK, or
// FAILED_PRECONDITION with CURRENCY_MISMATCH, REFUND_AMOUNT_EXCEEDED,
// ORDER_NOT_CAPTURABLE, CAPTURE_AMOUNT_EXCEEDED or ORDER_NOT_VOIDABLE
// (metadata: the balance or status that decided).
absl::Status CheckRefundable(const v1::Order& order,
                             const v1::RefundRequest& request);
absl::Status CheckCapturable(const v1::Order& order,
                             const v1::CaptureRequest& request);
absl::Status CheckVoidable(const v1::Order& order);

// Create: order query, checks, then the PayKKa operation. Capture and Void
// read the order again to answer it; if that read fails the operation's
// outcome is PSP_OUTCOME_UNKNOWN (a retry adopts it).
void CreateRefund(paykka::PaykkaClient& client,
                  const paykka::MerchantConfig& merchant,
                  const v1::RefundRequest& request, absl::Time deadline,
                  paykka::Callback<v1::RefundResponse> done);
void CreateCapture(paykka::PaykkaClient& client,
                   const paykka::MerchantConfig& merchant,
                   const v1::CaptureRequest& request, absl::Time deadline,
                   paykka::Callback<v1::CaptureResponse> done);
void CreateVoid(paykka::PaykkaClient& client,
                const paykka::MerchantConfig& merchant,
                const v1::VoidRequest& request, absl::Time deadline,
                paykka::Callback<v1::VoidResponse> done);
void CreateCancelRecurring(paykka::PaykkaClient& client,
                           const paykka::MerchantConfig& merchant,
                           const v1::CancelRecurringRequest& request,
                           absl::Time deadline,
                           paykka::Callback<v1::CancelRecurringResponse> done);

void AdoptRefund(paykka::PaykkaClient& client,
                 const paykka::MerchantConfig& merchant,
                 const v1::RefundRequest& request, absl::Time deadline,
                 paykka::Callback<RefundAdoption> done);
void AdoptCapture(paykka::PaykkaClient& client,
                  const paykka::MerchantConfig& merchant,
                  const v1::CaptureRequest& request, absl::Time deadline,
                  paykka::Callback<CaptureAdoption> done);
void AdoptVoid(paykka::PaykkaClient& client,
               const paykka::MerchantConfig& merchant,
               const v1::VoidRequest& request, absl::Time deadline,
               paykka::Callback<VoidAdoption> done);
void AdoptCancelRecurring(paykka::PaykkaClient& client,
                          const paykka::MerchantConfig& merchant,
                          const v1::CancelRecurringRequest& request,
                          absl::Time deadline,
                          paykka::Callback<CancelRecurringAdoption> done);

// The refund PayKKa answered, completed from the request where PayKKa left
// a field out.
v1::Refund CompleteRefund(v1::Refund refund, const v1::RefundRequest& request);

}  // namespace payorch::service

#endif  // PAYORCH_SERVICE_POSTPAY_H_
