#include "service/adoption.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/errors.h"

namespace payorch::service {
namespace {

using paykka::MerchantConfig;
using paykka::OrderLookup;
using paykka::PaykkaClient;
using paykka::SessionLookup;

bool IsPspNotFound(const absl::Status& s) {
  return s.code() == absl::StatusCode::kNotFound &&
         (HasReason(s, Reason::kOrderNotFound) ||
          HasReason(s, Reason::kSessionNotFound));
}

absl::Status Reused(const std::string& trans_id, absl::string_view what) {
  return MakeError(Reason::kTransIdReused,
                   absl::StrCat("PayKKa holds ", what, " for this trans_id"),
                   {{"trans_id", trans_id}});
}

// "" when PayKKa's amount and currency (empty/zero: not reported) match.
std::string ContentDiff(int64_t amount, const std::string& currency,
                        int64_t want_amount, const std::string& want_currency) {
  if (amount != 0 && amount != want_amount) return "a different amount";
  if (!currency.empty() && currency != want_currency) {
    return "a different currency";
  }
  return "";
}

// The second lookup after "not found": does the trans_id name an object of
// the other kind? Found: kReused; not found: kNotFound; else the error.
template <typename Result, typename Found>
void DecideOtherKind(absl::StatusOr<Found> other, const std::string& trans_id,
                     absl::string_view what, paykka::Callback<Result> done) {
  Result result;
  if (other.ok()) {
    result.verdict = Result::Verdict::kReused;
    result.reused = Reused(trans_id, what);
  } else if (IsPspNotFound(other.status())) {
    result.verdict = Result::Verdict::kNotFound;
  } else {
    return std::move(done)(other.status());
  }
  std::move(done)(std::move(result));
}

void OnSession(PaykkaClient& client, const MerchantConfig& merchant,
               const v1::CreateCheckoutRequest& request, absl::Time deadline,
               absl::StatusOr<v1::GetSessionStatusResponse> s,
               paykka::Callback<CheckoutAdoption> done) {
  if (!s.ok() && !IsPspNotFound(s.status())) {
    return std::move(done)(s.status());
  }
  if (!s.ok()) {
    // No session: a merchant-initiated charge may hold the trans_id.
    return client.QueryTransaction(
        merchant, {OrderLookup::Kind::kTransId, request.trans_id()}, deadline,
        [done = std::move(done), trans_id = request.trans_id()](
            absl::StatusOr<v1::Order> order) mutable {
          DecideOtherKind<CheckoutAdoption>(std::move(order), trans_id,
                                            "an order that is not a checkout",
                                            std::move(done));
        });
  }
  CheckoutAdoption result;
  std::string diff = ContentDiff(s->amount(), s->currency(), request.amount(),
                                 request.currency());
  if (!diff.empty()) {
    result.verdict = CheckoutAdoption::Verdict::kReused;
    result.reused =
        Reused(request.trans_id(), absl::StrCat("a session with ", diff));
    return std::move(done)(std::move(result));
  }
  result.verdict = CheckoutAdoption::Verdict::kAdopt;
  v1::CreateCheckoutResponse& r = result.response;
  r.set_session_id(s->session_id());
  r.set_client_key(merchant.client_key);
  r.set_session_url(s->session_url());
  if (s->has_expire_time()) *r.mutable_expire_time() = s->expire_time();
  r.set_status(s->status());
  r.set_status_text(s->status_text());
  r.set_merchant_id(s->merchant_id());
  r.set_trans_id(s->trans_id());
  std::move(done)(std::move(result));
}

// What keeps `order` from being the charge `request` asked for; "" if none.
std::string ChargeDiff(const v1::Order& order,
                       const v1::ChargeRecurringRequest& request) {
  if (!order.session_id().empty()) return "a checkout's order";
  if (!order.recurring_agreement_id().empty() &&
      order.recurring_agreement_id() != request.recurring_agreement_id()) {
    return "a charge on another recurring agreement";
  }
  if (!order.shopper_reference().empty() &&
      order.shopper_reference() != request.payment().shopper_reference()) {
    return "a charge for another shopper";
  }
  std::string diff = ContentDiff(order.amount(), order.currency(),
                                 request.amount(), request.currency());
  return diff.empty() ? "" : absl::StrCat("a charge with ", diff);
}

void OnOrder(PaykkaClient& client, const MerchantConfig& merchant,
             const v1::ChargeRecurringRequest& request, absl::Time deadline,
             absl::StatusOr<v1::Order> order,
             paykka::Callback<ChargeAdoption> done) {
  if (!order.ok() && !IsPspNotFound(order.status())) {
    return std::move(done)(order.status());
  }
  if (!order.ok()) {
    // No order: an unpaid checkout session may hold the trans_id.
    return client.QuerySession(
        merchant, {SessionLookup::Kind::kTransId, request.trans_id()}, deadline,
        [done = std::move(done), trans_id = request.trans_id()](
            absl::StatusOr<v1::GetSessionStatusResponse> s) mutable {
          DecideOtherKind<ChargeAdoption>(
              std::move(s), trans_id, "a checkout session", std::move(done));
        });
  }
  ChargeAdoption result;
  if (std::string diff = ChargeDiff(*order, request); !diff.empty()) {
    result.verdict = ChargeAdoption::Verdict::kReused;
    result.reused = Reused(request.trans_id(), diff);
    return std::move(done)(std::move(result));
  }
  result.verdict = ChargeAdoption::Verdict::kAdopt;
  *result.response.mutable_order() = *std::move(order);
  std::move(done)(std::move(result));
}

}  // namespace

void AdoptCheckout(PaykkaClient& client, const MerchantConfig& merchant,
                   const v1::CreateCheckoutRequest& request,
                   absl::Time deadline,
                   paykka::Callback<CheckoutAdoption> done) {
  client.QuerySession(
      merchant, {SessionLookup::Kind::kTransId, request.trans_id()}, deadline,
      [&client, &merchant, request, deadline, done = std::move(done)](
          absl::StatusOr<v1::GetSessionStatusResponse> s) mutable {
        OnSession(client, merchant, request, deadline, std::move(s),
                  std::move(done));
      });
}

void AdoptCharge(PaykkaClient& client, const MerchantConfig& merchant,
                 const v1::ChargeRecurringRequest& request, absl::Time deadline,
                 paykka::Callback<ChargeAdoption> done) {
  client.QueryTransaction(
      merchant, {OrderLookup::Kind::kTransId, request.trans_id()}, deadline,
      [&client, &merchant, request, deadline,
       done = std::move(done)](absl::StatusOr<v1::Order> order) mutable {
        OnOrder(client, merchant, request, deadline, std::move(order),
                std::move(done));
      });
}

}  // namespace payorch::service
