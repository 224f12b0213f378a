#ifndef PAYORCH_BENCH_SRC_REQUESTS_H_
#define PAYORCH_BENCH_SRC_REQUESTS_H_

// The requests both bench tools send. payorch-loadgen sends them as gRPC
// messages; paykka-direct turns the very same messages into PayKKa bodies
// with the adapter's mapping (adapters/paykka/mapping.h), so both sides put
// identical bytes on the wire to the sandbox.

#include <cstdint>
#include <string>

#include "payorch/v1/payorch.pb.h"

namespace payorch::bench {

struct RequestOptions {
  std::string merchant_id = "M100001";
  int64_t amount = 1999;
  std::string currency = "USD";
  bool recurring = false;  // CreateCheckout: first payment of a series
  std::string shopper_reference = "bench-shopper-1";
  std::string token;                   // ChargeRecurring
  std::string recurring_agreement_id;  // ChargeRecurring
};

v1::CreateCheckoutRequest MakeCreateCheckout(const RequestOptions& o,
                                             const std::string& trans_id);
v1::ChargeRecurringRequest MakeChargeRecurring(const RequestOptions& o,
                                               const std::string& trans_id);
v1::GetOrderRequest MakeGetOrderByTransId(const RequestOptions& o,
                                          const std::string& trans_id);

}  // namespace payorch::bench

#endif  // PAYORCH_BENCH_SRC_REQUESTS_H_
