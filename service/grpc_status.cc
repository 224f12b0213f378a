#include "service/grpc_status.h"

#include <map>
#include <optional>
#include <vector>

#include "common/errors.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/rpc/error_details.pb.h"

namespace payorch::service {
namespace {

constexpr char kTypeUrlPrefix[] = "type.googleapis.com/";

// Any.PackFrom, but with deterministic serialization (ErrorInfo.metadata is a
// map, whose default serialization order is unspecified).
void PackDeterministic(const google::protobuf::Message& message,
                       google::protobuf::Any* any) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  any->set_type_url(std::string(kTypeUrlPrefix) +
                    message.GetDescriptor()->full_name());
  any->set_value(std::move(bytes));
}

// Copies onto `to` every payload of `from` that `to` does not have yet.
void CopyMissingPayloads(const absl::Status& from, absl::Status* to) {
  from.ForEachPayload([to](absl::string_view url, const absl::Cord& c) {
    if (!to->GetPayload(url).has_value()) to->SetPayload(url, c);
  });
}

}  // namespace

google::rpc::Status ToRpcStatus(const absl::Status& status) {
  google::rpc::Status out;
  out.set_code(static_cast<int>(status.code()));
  if (status.ok()) return out;
  out.set_message(std::string(status.message()));

  google::rpc::ErrorInfo info;
  info.set_domain(std::string(kErrorDomain));
  std::optional<Reason> reason = ReasonOf(status);
  info.set_reason(std::string(ReasonName(reason.value_or(Reason::kInternal))));
  for (const auto& [key, value] : MetadataOf(status)) {
    (*info.mutable_metadata())[key] = value;
  }
  PackDeterministic(info, out.add_details());

  std::vector<FieldViolation> violations = FieldViolationsOf(status);
  if (!violations.empty()) {
    google::rpc::BadRequest bad_request;
    for (const FieldViolation& v : violations) {
      auto* fv = bad_request.add_field_violations();
      fv->set_field(v.field);
      fv->set_description(v.description);
    }
    PackDeterministic(bad_request, out.add_details());
  }

  if (std::optional<absl::Duration> delay = RetryDelayOf(status)) {
    google::rpc::RetryInfo retry;
    int64_t ms = absl::ToInt64Milliseconds(*delay);
    retry.mutable_retry_delay()->set_seconds(ms / 1000);
    retry.mutable_retry_delay()->set_nanos(static_cast<int32_t>(ms % 1000) *
                                           1000000);
    PackDeterministic(retry, out.add_details());
  }
  return out;
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()),
                      ToRpcStatus(status).SerializeAsString());
}

namespace {

// True for the codes gRPC and absl define (1..16): any other value read from
// stored bytes would be an invalid enum value.
bool IsErrorCode(int code) {
  return code > 0 &&
         code <= static_cast<int>(grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace

grpc::Status GrpcStatusFromRpcStatusBytes(const std::string& rpc_status) {
  google::rpc::Status parsed;
  if (!parsed.ParseFromString(rpc_status) || !IsErrorCode(parsed.code())) {
    return ToGrpcStatus(
        MakeError(Reason::kInternal, "stored error is unreadable"));
  }
  return grpc::Status(static_cast<grpc::StatusCode>(parsed.code()),
                      parsed.message(), rpc_status);
}

absl::Status FromRpcStatus(const google::rpc::Status& rpc_status) {
  if (rpc_status.code() == 0) return absl::OkStatus();
  // A code outside gRPC's set is reported as UNKNOWN, never cast as is.
  auto code = IsErrorCode(rpc_status.code())
                  ? static_cast<absl::StatusCode>(rpc_status.code())
                  : absl::StatusCode::kUnknown;
  std::optional<Reason> reason;
  Metadata metadata;
  std::vector<FieldViolation> violations;
  std::optional<absl::Duration> delay;
  for (const google::protobuf::Any& any : rpc_status.details()) {
    google::rpc::ErrorInfo info;
    google::rpc::BadRequest bad_request;
    google::rpc::RetryInfo retry;
    if (any.UnpackTo(&info)) {
      for (Reason r : AllReasons()) {
        if (ReasonName(r) == info.reason()) reason = r;
      }
      // Sorted, so the result does not depend on map order.
      std::map<std::string, std::string> sorted(info.metadata().begin(),
                                                info.metadata().end());
      metadata.assign(sorted.begin(), sorted.end());
    } else if (any.UnpackTo(&bad_request)) {
      for (const auto& fv : bad_request.field_violations()) {
        violations.push_back({fv.field(), fv.description()});
      }
    } else if (any.UnpackTo(&retry)) {
      delay = absl::Seconds(retry.retry_delay().seconds()) +
              absl::Nanoseconds(retry.retry_delay().nanos());
    }
  }
  // The code is the one on the wire (chosen by CodeOf when the status was
  // made); the reason, metadata and violations are copied onto it.
  absl::Status out(code, rpc_status.message());
  CopyMissingPayloads(MakeError(reason.value_or(Reason::kInternal),
                                rpc_status.message(), metadata),
                      &out);
  // common/errors.h attaches violations only through InvalidFields().
  if (!violations.empty()) {
    CopyMissingPayloads(InvalidFields(std::move(violations)), &out);
  }
  if (delay) out = WithRetryDelay(std::move(out), *delay);
  return out;
}

}  // namespace payorch::service
