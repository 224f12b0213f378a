#ifndef PAYORCH_SERVICE_FINGERPRINT_H_
#define PAYORCH_SERVICE_FINGERPRINT_H_

// The fingerprint of a mutating request: what the idempotency store compares
// to tell "the same request again" (replay) from "the same trans_id with
// different content" (TRANS_ID_REUSED).

#include <string>

#include "payorch/v1/payorch.pb.h"

namespace payorch::service {

// RPC families: the first part of the idempotency key and of the fingerprint.
inline constexpr char kCheckoutFamily[] = "checkout";
inline constexpr char kChargeFamily[] = "charge";

// "<family>:" + lower-case hex SHA-256 over the family and the request's
// deterministic protobuf serialization, after spelling out defaults that mean
// the same thing (e.g. ChargeRecurring's unset mit means true), so two
// requests that ask PayKKa for the same thing share a fingerprint.
// Deterministic across processes and replicas built from the same proto.
std::string Fingerprint(const v1::CreateCheckoutRequest& request);
std::string Fingerprint(const v1::ChargeRecurringRequest& request);

}  // namespace payorch::service

#endif  // PAYORCH_SERVICE_FINGERPRINT_H_
