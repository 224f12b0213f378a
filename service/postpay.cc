#include "service/postpay.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "adapters/paykka/http_transport.h"
#include "common/errors.h"

namespace payorch::service {
namespace {

using paykka::MerchantConfig;
using paykka::OrderLookup;
using paykka::PaykkaClient;

absl::Status CurrencyMismatch(const v1::Order& order) {
  return MakeError(
      Reason::kCurrencyMismatch, "the request's currency is not the order's",
      {{"order_id", order.order_id()}, {"order_currency", order.currency()}});
}

bool CurrencyDiffers(const v1::Order& order, const std::string& currency) {
  return !order.currency().empty() && order.currency() != currency;
}

// Reads the order, applies `check`, then runs `mutate`. A failed read or
// check is answered marked "not sent": the flow releases its claim.
template <typename Response, typename Check, typename Mutate>
void CheckedMutation(PaykkaClient& client, const MerchantConfig& merchant,
                     const std::string& order_id, absl::Time deadline,
                     Check check, Mutate mutate,
                     paykka::Callback<Response> done) {
  client.QueryTransaction(
      merchant, {OrderLookup::Kind::kOrderId, order_id}, deadline,
      [check = std::move(check), mutate = std::move(mutate),
       done = std::move(done)](absl::StatusOr<v1::Order> order) mutable {
        if (!order.ok()) {
          return std::move(done)(paykka::MarkNotSent(order.status()));
        }
        if (absl::Status s = check(*order); !s.ok()) {
          return std::move(done)(paykka::MarkNotSent(std::move(s)));
        }
        std::move(mutate)(std::move(done));
      });
}

// After PayKKa accepted a capture or void (an envelope without data): the
// order as it is now. If it cannot be read, the operation is done but its
// answer is not: PSP_OUTCOME_UNKNOWN, so the record waits for adoption.
template <typename Response>
void AnswerWithOrder(PaykkaClient& client, const MerchantConfig& merchant,
                     const std::string& order_id, absl::Time deadline,
                     absl::StatusOr<std::monostate> accepted,
                     paykka::Callback<Response> done) {
  if (!accepted.ok()) return std::move(done)(accepted.status());
  client.QueryTransaction(
      merchant, {OrderLookup::Kind::kOrderId, order_id}, deadline,
      [done = std::move(done)](absl::StatusOr<v1::Order> order) mutable {
        if (!order.ok()) {
          Metadata md = MetadataOf(order.status());
          md.emplace_back("cause", "ORDER_READ_AFTER_ACCEPT");
          return std::move(done)(
              MakeError(Reason::kPspOutcomeUnknown,
                        "PayKKa accepted the operation; the order could not "
                        "be read back",
                        md));
        }
        Response r;
        *r.mutable_order() = *std::move(order);
        std::move(done)(std::move(r));
      });
}

// Capture and Void: the order is checked, `op` sent, and the order as it is
// then is the answer.
template <typename Response, typename Request, typename Check>
void OrderOperation(PaykkaClient& client, const MerchantConfig& merchant,
                    const Request& request, absl::Time deadline, Check check,
                    void (PaykkaClient::*op)(const MerchantConfig&,
                                             const Request&, absl::Time,
                                             paykka::Callback<std::monostate>),
                    paykka::Callback<Response> done) {
  CheckedMutation<Response>(
      client, merchant, request.order_id(), deadline, std::move(check),
      [&client, &merchant, request, deadline,
       op](paykka::Callback<Response> done) {
        (client.*op)(merchant, request, deadline,
                     [&client, &merchant, order_id = request.order_id(),
                      deadline, done = std::move(done)](
                         absl::StatusOr<std::monostate> accepted) mutable {
                       AnswerWithOrder(client, merchant, order_id, deadline,
                                       std::move(accepted), std::move(done));
                     });
      },
      std::move(done));
}

// The order `order_id`, adopted when `matches` says it shows the request's
// effect, else kNotFound.
template <typename Result, typename Matches>
void AdoptByOrder(PaykkaClient& client, const MerchantConfig& merchant,
                  const std::string& order_id, absl::Time deadline,
                  Matches matches, paykka::Callback<Result> done) {
  client.QueryTransaction(
      merchant, {OrderLookup::Kind::kOrderId, order_id}, deadline,
      [matches = std::move(matches),
       done = std::move(done)](absl::StatusOr<v1::Order> order) mutable {
        Result result;
        if (!order.ok() && !HasReason(order.status(), Reason::kOrderNotFound)) {
          return std::move(done)(order.status());
        }
        if (order.ok() && matches(*order)) {
          result.verdict = Result::Verdict::kAdopt;
          *result.response.mutable_order() = *std::move(order);
        }
        std::move(done)(std::move(result));
      });
}

}  // namespace

absl::Status CheckRefundable(const v1::Order& order,
                             const v1::RefundRequest& request) {
  if (CurrencyDiffers(order, request.currency())) {
    return CurrencyMismatch(order);
  }
  const int64_t able = order.balances().able_to_refund_amount();
  if (request.amount() > able) {
    return MakeError(
        Reason::kRefundAmountExceeded,
        absl::StrCat("amount ", request.amount(),
                     " exceeds the order's able_to_refund_amount ", able),
        {{"order_id", order.order_id()},
         {"able_to_refund_amount", absl::StrCat(able)},
         {"status", order.status_text()}});
  }
  return absl::OkStatus();
}

absl::Status CheckCapturable(const v1::Order& order,
                             const v1::CaptureRequest& request) {
  if (order.status() != v1::ORDER_STATUS_AUTHORIZED) {
    return MakeError(
        Reason::kOrderNotCapturable, "only an AUTHORIZED order can be captured",
        {{"order_id", order.order_id()}, {"status", order.status_text()}});
  }
  if (CurrencyDiffers(order, request.currency())) {
    return CurrencyMismatch(order);
  }
  const int64_t able = order.balances().able_to_capture_amount();
  if (request.amount() > able) {
    return MakeError(
        Reason::kCaptureAmountExceeded,
        absl::StrCat("amount ", request.amount(),
                     " exceeds the order's able_to_capture_amount ", able),
        {{"order_id", order.order_id()},
         {"able_to_capture_amount", absl::StrCat(able)}});
  }
  return absl::OkStatus();
}

absl::Status CheckVoidable(const v1::Order& order) {
  if (order.status() != v1::ORDER_STATUS_AUTHORIZED ||
      order.balances().able_to_void_amount() <= 0) {
    return MakeError(
        Reason::kOrderNotVoidable,
        "only an uncaptured authorisation can be voided",
        {{"order_id", order.order_id()}, {"status", order.status_text()}});
  }
  return absl::OkStatus();
}

v1::Refund CompleteRefund(v1::Refund refund, const v1::RefundRequest& request) {
  if (refund.merchant_id().empty())
    refund.set_merchant_id(request.merchant_id());
  if (refund.refund_trans_id().empty()) {
    refund.set_refund_trans_id(request.refund_trans_id());
  }
  if (refund.order_id().empty()) refund.set_order_id(request.order_id());
  if (refund.amount() == 0) refund.set_amount(request.amount());
  if (refund.currency().empty()) refund.set_currency(request.currency());
  return refund;
}

void CreateRefund(PaykkaClient& client, const MerchantConfig& merchant,
                  const v1::RefundRequest& request, absl::Time deadline,
                  paykka::Callback<v1::RefundResponse> done) {
  CheckedMutation<v1::RefundResponse>(
      client, merchant, request.order_id(), deadline,
      [request](const v1::Order& order) {
        return CheckRefundable(order, request);
      },
      [&client, &merchant, request,
       deadline](paykka::Callback<v1::RefundResponse> done) {
        client.Refund(merchant, request, deadline,
                      [request, done = std::move(done)](
                          absl::StatusOr<v1::Refund> refund) mutable {
                        if (!refund.ok()) {
                          return std::move(done)(refund.status());
                        }
                        v1::RefundResponse r;
                        *r.mutable_refund() =
                            CompleteRefund(*std::move(refund), request);
                        std::move(done)(std::move(r));
                      });
      },
      std::move(done));
}

void CreateCapture(PaykkaClient& client, const MerchantConfig& merchant,
                   const v1::CaptureRequest& request, absl::Time deadline,
                   paykka::Callback<v1::CaptureResponse> done) {
  OrderOperation<v1::CaptureResponse>(
      client, merchant, request, deadline,
      [request](const v1::Order& order) {
        return CheckCapturable(order, request);
      },
      &PaykkaClient::Capture, std::move(done));
}

void CreateVoid(PaykkaClient& client, const MerchantConfig& merchant,
                const v1::VoidRequest& request, absl::Time deadline,
                paykka::Callback<v1::VoidResponse> done) {
  OrderOperation<v1::VoidResponse>(
      client, merchant, request, deadline,
      [](const v1::Order& order) { return CheckVoidable(order); },
      &PaykkaClient::Void, std::move(done));
}

void CreateCancelRecurring(PaykkaClient& client, const MerchantConfig& merchant,
                           const v1::CancelRecurringRequest& request,
                           absl::Time deadline,
                           paykka::Callback<v1::CancelRecurringResponse> done) {
  client.CancelRecurring(
      merchant, request, deadline,
      [request, done = std::move(done)](
          absl::StatusOr<std::monostate> accepted) mutable {
        if (!accepted.ok()) return std::move(done)(accepted.status());
        v1::CancelRecurringResponse r;
        r.set_merchant_id(request.merchant_id());
        r.set_recurring_agreement_id(request.recurring_agreement_id());
        std::move(done)(std::move(r));
      });
}

void AdoptRefund(PaykkaClient& client, const MerchantConfig& merchant,
                 const v1::RefundRequest& request, absl::Time deadline,
                 paykka::Callback<RefundAdoption> done) {
  client.QueryRefund(
      merchant,
      {paykka::RefundLookup::Kind::kRefundTransId, request.refund_trans_id()},
      deadline,
      [request,
       done = std::move(done)](absl::StatusOr<v1::Refund> refund) mutable {
        RefundAdoption result;
        if (!refund.ok()) {
          if (!HasReason(refund.status(), Reason::kOrderNotFound)) {
            return std::move(done)(refund.status());
          }
          return std::move(done)(std::move(result));
        }
        const v1::Refund& r = *refund;
        const bool same =
            (r.order_id().empty() || r.order_id() == request.order_id()) &&
            (r.amount() == 0 || r.amount() == request.amount()) &&
            (r.currency().empty() || r.currency() == request.currency());
        if (!same) {
          result.verdict = RefundAdoption::Verdict::kReused;
          result.reused =
              MakeError(Reason::kTransIdReused,
                        "PayKKa holds a refund with other content for this "
                        "refund_trans_id",
                        {{"refund_trans_id", request.refund_trans_id()}});
          return std::move(done)(std::move(result));
        }
        result.verdict = RefundAdoption::Verdict::kAdopt;
        *result.response.mutable_refund() =
            CompleteRefund(*std::move(refund), request);
        std::move(done)(std::move(result));
      });
}

void AdoptCapture(PaykkaClient& client, const MerchantConfig& merchant,
                  const v1::CaptureRequest& request, absl::Time deadline,
                  paykka::Callback<CaptureAdoption> done) {
  AdoptByOrder<CaptureAdoption>(
      client, merchant, request.order_id(), deadline,
      [amount = request.amount()](const v1::Order& order) {
        return order.balances().captured_amount() == amount;
      },
      std::move(done));
}

void AdoptVoid(PaykkaClient& client, const MerchantConfig& merchant,
               const v1::VoidRequest& request, absl::Time deadline,
               paykka::Callback<VoidAdoption> done) {
  AdoptByOrder<VoidAdoption>(
      client, merchant, request.order_id(), deadline,
      [](const v1::Order& order) {
        return order.status() == v1::ORDER_STATUS_CANCELED;
      },
      std::move(done));
}

void AdoptCancelRecurring(PaykkaClient&, const MerchantConfig&,
                          const v1::CancelRecurringRequest&, absl::Time,
                          paykka::Callback<CancelRecurringAdoption> done) {
  std::move(done)(CancelRecurringAdoption{});
}

}  // namespace payorch::service
