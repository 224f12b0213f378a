#include "bench/src/requests.h"

namespace payorch::bench {

v1::CreateCheckoutRequest MakeCreateCheckout(const RequestOptions& o,
                                             const std::string& trans_id) {
  v1::CreateCheckoutRequest r;
  r.set_merchant_id(o.merchant_id);
  r.set_trans_id(trans_id);
  r.set_amount(o.amount);
  r.set_currency(o.currency);
  r.set_session_mode(v1::SESSION_MODE_DROP_IN);
  r.set_return_url("https://shop.example/return");
  if (o.recurring) {
    r.set_payment_type(v1::PAYMENT_TYPE_RECURRING);
    r.mutable_payment()->set_store_payment_method(true);
    r.mutable_payment()->set_token_usage(v1::TOKEN_USAGE_SUBSCRIPTION);
    r.mutable_payment()->set_shopper_reference(o.shopper_reference);
  } else {
    r.set_payment_type(v1::PAYMENT_TYPE_PURCHASE);
  }
  return r;
}

v1::ChargeRecurringRequest MakeChargeRecurring(const RequestOptions& o,
                                               const std::string& trans_id) {
  v1::ChargeRecurringRequest r;
  r.set_merchant_id(o.merchant_id);
  r.set_trans_id(trans_id);
  r.set_amount(o.amount);
  r.set_currency(o.currency);
  r.set_payment_type(v1::PAYMENT_TYPE_RECURRING);
  r.set_mit(true);
  r.set_recurring_agreement_id(o.recurring_agreement_id);
  r.mutable_payment()->set_payment_method("BANKCARD");
  r.mutable_payment()->set_token(o.token);
  r.mutable_payment()->set_shopper_reference(o.shopper_reference);
  r.mutable_payment()->set_token_usage(v1::TOKEN_USAGE_SUBSCRIPTION);
  return r;
}

v1::GetOrderRequest MakeGetOrderByTransId(const RequestOptions& o,
                                          const std::string& trans_id) {
  v1::GetOrderRequest r;
  r.set_merchant_id(o.merchant_id);
  r.set_trans_id(trans_id);
  return r;
}

}  // namespace payorch::bench
