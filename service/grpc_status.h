#ifndef PAYORCH_SERVICE_GRPC_STATUS_H_
#define PAYORCH_SERVICE_GRPC_STATUS_H_

// The one place where payorch's internal errors (absl::Status with the
// payloads of common/errors.h) become what callers see: a grpc::Status with
// the same code and message whose error_details are a serialized
// google.rpc.Status (AIP-193) carrying
// - exactly one google.rpc.ErrorInfo: domain "payorch", reason (INTERNAL when
//   the status carries none), metadata;
// - google.rpc.BadRequest with every field violation, when there are any;
// - google.rpc.RetryInfo, when waiting and retrying can succeed.

#include <string>

#include "absl/status/status.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/support/status.h"

namespace payorch::service {

// The google.rpc.Status for a non-OK `status` (code 0 and no details for OK).
// Deterministic: the same status always gives the same bytes.
google::rpc::Status ToRpcStatus(const absl::Status& status);

// The gRPC edge's status for `status`: OK, or code + message + error_details.
grpc::Status ToGrpcStatus(const absl::Status& status);

// A stored rejection as the caller sees it: code and message from the
// serialized google.rpc.Status `rpc_status`, which becomes error_details
// unchanged (byte for byte). INTERNAL if `rpc_status` does not parse.
grpc::Status GrpcStatusFromRpcStatusBytes(const std::string& rpc_status);

// The absl::Status described by a google.rpc.Status (code, message, reason,
// metadata, field violations, retry delay): the inverse of ToRpcStatus for
// statuses it produced. Used to report a stored rejection's reason.
absl::Status FromRpcStatus(const google::rpc::Status& rpc_status);

}  // namespace payorch::service

#endif  // PAYORCH_SERVICE_GRPC_STATUS_H_
