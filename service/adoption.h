#ifndef PAYORCH_SERVICE_ADOPTION_H_
#define PAYORCH_SERVICE_ADOPTION_H_

// Adoption: what PayKKa already holds for a mutating request's trans_id,
// compared with the request. The one decision behind every path that must
// not create blind: a retry over an UNKNOWN record, any refusal of a create
// (whatever PayKKa's wording), and the background reconciler, which calls
// these with the request stored in the idempotency record (BeginArgs::request,
// the request's serialized payorch.v1 message).
//
// Queries only (PayKKa's Query Session / Query Transaction by trans_id,
// retried by the client on transient errors); never a create.

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "adapters/paykka/paykka_client.h"
#include "payorch/v1/payorch.pb.h"

namespace payorch::service {

template <typename Response>
struct Adoption {
  enum class Verdict {
    // PayKKa holds an object of the request's kind with the same amount and
    // currency: `response` is the answer to store and replay.
    kAdopt,
    // PayKKa holds an object of another kind (a checkout session vs a
    // merchant-initiated charge) or with other content: `reused` is
    // ALREADY_EXISTS TRANS_ID_REUSED naming what differs.
    kReused,
    // PayKKa knows nothing under this trans_id (as a session or an order).
    kNotFound,
  };
  Verdict verdict = Verdict::kNotFound;
  Response response;
  absl::Status reused;
};

using CheckoutAdoption = Adoption<v1::CreateCheckoutResponse>;
using ChargeAdoption = Adoption<v1::ChargeRecurringResponse>;

// Looks `request.trans_id()` up: the session first (adopted when amount and
// currency match; the answer gets the merchant's client_key), then, when
// there is none, an order (a merchant-initiated charge: kReused). An error
// means PayKKa could not answer: the outcome stays unknown.
void AdoptCheckout(paykka::PaykkaClient& client,
                   const paykka::MerchantConfig& merchant,
                   const v1::CreateCheckoutRequest& request,
                   absl::Time deadline,
                   paykka::Callback<CheckoutAdoption> done);

// Looks `request.trans_id()` up: the order first (adopted when it is a
// merchant-initiated charge, i.e. no session_id and, where PayKKa reports
// them, the request's recurring_agreement_id and shopper_reference, with the
// same amount and currency), then, when there is none, a session (a
// checkout's trans_id: kReused).
void AdoptCharge(paykka::PaykkaClient& client,
                 const paykka::MerchantConfig& merchant,
                 const v1::ChargeRecurringRequest& request, absl::Time deadline,
                 paykka::Callback<ChargeAdoption> done);

}  // namespace payorch::service

#endif  // PAYORCH_SERVICE_ADOPTION_H_
