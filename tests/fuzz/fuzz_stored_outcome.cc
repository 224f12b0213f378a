// libFuzzer target: the bytes a completed idempotency record keeps in Redis
// (payorch.internal.StoredOutcome), decoded as the service decodes them to
// replay an answer: a stored refusal becomes the caller's status
// (FromRpcStatus, GrpcStatusFromRpcStatusBytes), a stored response is parsed
// as the RPC's response message.
#include <cstddef>
#include <cstdint>
#include <string>

#include "payorch/internal/stored_outcome.pb.h"
#include "payorch/v1/payorch.pb.h"
#include "service/grpc_status.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace payorch;
  internal::StoredOutcome record;
  if (!record.ParseFromArray(data, static_cast<int>(size))) return 0;
  if (record.has_error()) {
    absl::Status status = service::FromRpcStatus(record.error());
    (void)service::ToRpcStatus(status);
    (void)service::GrpcStatusFromRpcStatusBytes(
        record.error().SerializeAsString());
    return 0;
  }
  v1::CreateCheckoutResponse checkout;
  (void)checkout.ParseFromString(record.response());
  v1::ChargeRecurringResponse charge;
  (void)charge.ParseFromString(record.response());
  return 0;
}
