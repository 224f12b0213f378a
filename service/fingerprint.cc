#include "service/fingerprint.h"

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace payorch::service {
namespace {

std::string DeterministicBytes(const google::protobuf::Message& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

std::string Hash(absl::string_view family,
                 const google::protobuf::Message& message) {
  return absl::StrCat(
      family, ":",
      Sha256Hex(absl::StrCat(family, "\n", DeterministicBytes(message))));
}

}  // namespace

std::string Fingerprint(const v1::CreateCheckoutRequest& request) {
  v1::CreateCheckoutRequest canonical = request;
  // Unset means PayKKa's default; spelling the default out is the same request.
  if (canonical.authorisation_type() == v1::AUTHORISATION_TYPE_UNSPECIFIED) {
    canonical.set_authorisation_type(v1::AUTHORISATION_TYPE_FINAL_AUTH);
  }
  if (canonical.capture_method() == v1::CAPTURE_METHOD_UNSPECIFIED) {
    canonical.set_capture_method(v1::CAPTURE_METHOD_AUTOMATIC);
  }
  if (canonical.payment().payment_method().empty()) {
    canonical.mutable_payment()->set_payment_method("BANKCARD");
  }
  return Hash(kCheckoutFamily, canonical);
}

std::string Fingerprint(const v1::ChargeRecurringRequest& request) {
  v1::ChargeRecurringRequest canonical = request;
  if (canonical.payment_type() == v1::PAYMENT_TYPE_UNSPECIFIED) {
    canonical.set_payment_type(v1::PAYMENT_TYPE_RECURRING);
  }
  if (canonical.payment().token_usage() == v1::TOKEN_USAGE_UNSPECIFIED) {
    canonical.mutable_payment()->set_token_usage(v1::TOKEN_USAGE_SUBSCRIPTION);
  }
  if (!canonical.has_mit()) canonical.set_mit(true);
  if (canonical.authorisation_type() == v1::AUTHORISATION_TYPE_UNSPECIFIED) {
    canonical.set_authorisation_type(v1::AUTHORISATION_TYPE_FINAL_AUTH);
  }
  if (canonical.capture_method() == v1::CAPTURE_METHOD_UNSPECIFIED) {
    canonical.set_capture_method(v1::CAPTURE_METHOD_AUTOMATIC);
  }
  if (canonical.payment().payment_method().empty()) {
    canonical.mutable_payment()->set_payment_method("BANKCARD");
  }
  return Hash(kChargeFamily, canonical);
}

}  // namespace payorch::service
