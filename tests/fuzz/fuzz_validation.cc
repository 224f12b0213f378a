// libFuzzer target: request bytes as the gRPC edge receives them, parsed as
// each payorch.v1 request and validated (service/validation.h).
// Input: one byte selects the RPC, the rest is the serialized request.
#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"
#include "payorch/v1/payorch.pb.h"
#include "service/validation.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using namespace payorch;
  const char* bytes = reinterpret_cast<const char*>(data + 1);
  const int len = static_cast<int>(size - 1);
  switch (data[0] % 4) {
    case 0: {
      v1::CreateCheckoutRequest r;
      if (!r.ParseFromArray(bytes, len)) return 0;
      (void)service::ValidateCreateCheckout(r,
                                            absl::FromUnixSeconds(1764000000));
      (void)service::ValidateCreateCheckoutContent(r);
      break;
    }
    case 1: {
      v1::ChargeRecurringRequest r;
      if (!r.ParseFromArray(bytes, len)) return 0;
      (void)service::ValidateChargeRecurring(r);
      break;
    }
    case 2: {
      v1::GetOrderRequest r;
      if (!r.ParseFromArray(bytes, len)) return 0;
      (void)service::ValidateGetOrder(r);
      break;
    }
    default: {
      v1::GetSessionStatusRequest r;
      if (!r.ParseFromArray(bytes, len)) return 0;
      (void)service::ValidateGetSessionStatus(r);
      break;
    }
  }
  return 0;
}
