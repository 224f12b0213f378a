#include "service/grpc_status.h"

#include "common/errors.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "service/fingerprint.h"
#include "tests/service/test_requests.h"

namespace payorch::service {
namespace {

using ::testing::Pair;
using ::testing::UnorderedElementsAre;

struct Parsed {
  google::rpc::Status status;
  int error_infos = 0;
  google::rpc::ErrorInfo info;
  std::optional<google::rpc::BadRequest> bad_request;
  std::optional<google::rpc::RetryInfo> retry;
};

Parsed Parse(const grpc::Status& status) {
  Parsed p;
  EXPECT_TRUE(p.status.ParseFromString(status.error_details()));
  EXPECT_EQ(p.status.code(), static_cast<int>(status.error_code()));
  EXPECT_EQ(p.status.message(), status.error_message());
  for (const auto& any : p.status.details()) {
    google::rpc::BadRequest br;
    google::rpc::RetryInfo ri;
    if (any.Is<google::rpc::ErrorInfo>()) {
      ++p.error_infos;
      EXPECT_TRUE(any.UnpackTo(&p.info));
    } else if (any.UnpackTo(&br)) {
      p.bad_request = br;
    } else if (any.UnpackTo(&ri)) {
      p.retry = ri;
    }
  }
  return p;
}

TEST(GrpcStatusTest, OkIsOkWithoutDetails) {
  grpc::Status s = ToGrpcStatus(absl::OkStatus());
  EXPECT_TRUE(s.ok());
  EXPECT_TRUE(s.error_details().empty());
}

TEST(GrpcStatusTest, KeepsCodeAndMessageAndAddsOneErrorInfo) {
  absl::Status error = MakeError(Reason::kTransIdReused, "trans_id reused",
                                 {{"trans_id", "T-1"}, {"merchant_id", "M"}});
  grpc::Status s = ToGrpcStatus(error);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(s.error_message(), "trans_id reused");
  Parsed p = Parse(s);
  EXPECT_EQ(p.error_infos, 1);
  EXPECT_EQ(p.info.domain(), "payorch");
  EXPECT_EQ(p.info.reason(), "TRANS_ID_REUSED");
  EXPECT_THAT(
      p.info.metadata(),
      UnorderedElementsAre(Pair("trans_id", "T-1"), Pair("merchant_id", "M")));
  EXPECT_FALSE(p.bad_request.has_value());
  EXPECT_FALSE(p.retry.has_value());
}

TEST(GrpcStatusTest, StatusWithoutReasonGetsInternal) {
  Parsed p = Parse(ToGrpcStatus(absl::InternalError("boom")));
  EXPECT_EQ(p.error_infos, 1);
  EXPECT_EQ(p.info.reason(), "INTERNAL");
  EXPECT_EQ(p.info.domain(), "payorch");
}

TEST(GrpcStatusTest, FieldViolationsBecomeBadRequest) {
  grpc::Status s = ToGrpcStatus(InvalidFields(
      {{"goods[2].price", "must be >= 0"}, {"bill.email", "bad"}}));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  Parsed p = Parse(s);
  EXPECT_EQ(p.error_infos, 1);
  EXPECT_EQ(p.info.reason(), "INVALID_FIELD");
  ASSERT_TRUE(p.bad_request.has_value());
  ASSERT_EQ(p.bad_request->field_violations_size(), 2);
  EXPECT_EQ(p.bad_request->field_violations(0).field(), "goods[2].price");
  EXPECT_EQ(p.bad_request->field_violations(0).description(), "must be >= 0");
  EXPECT_EQ(p.bad_request->field_violations(1).field(), "bill.email");
}

TEST(GrpcStatusTest, RetryDelayBecomesRetryInfo) {
  grpc::Status s = ToGrpcStatus(WithRetryDelay(
      MakeError(Reason::kRequestInProgress, "busy"), absl::Milliseconds(2500)));
  Parsed p = Parse(s);
  EXPECT_EQ(p.info.reason(), "REQUEST_IN_PROGRESS");
  ASSERT_TRUE(p.retry.has_value());
  EXPECT_EQ(p.retry->retry_delay().seconds(), 2);
  EXPECT_EQ(p.retry->retry_delay().nanos(), 500000000);
}

TEST(GrpcStatusTest, RpcStatusRoundTripsAndReplaysByteForByte) {
  absl::Status error =
      WithRetryDelay(MakeError(Reason::kPspRejected, "rejected",
                               {{"psp_ret_code", "010000"}, {"b", "2"}}),
                     absl::Seconds(1));
  google::rpc::Status rpc = ToRpcStatus(error);
  // Deterministic, whatever the map order.
  EXPECT_EQ(rpc.SerializeAsString(), ToRpcStatus(error).SerializeAsString());
  std::string bytes = rpc.SerializeAsString();
  grpc::Status replay = GrpcStatusFromRpcStatusBytes(bytes);
  EXPECT_EQ(replay.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(replay.error_message(), "rejected");
  EXPECT_EQ(replay.error_details(), bytes);

  absl::Status back = FromRpcStatus(rpc);
  EXPECT_EQ(back.code(), error.code());
  EXPECT_EQ(back.message(), error.message());
  EXPECT_TRUE(HasReason(back, Reason::kPspRejected));
  EXPECT_EQ(RetryDelayOf(back), absl::Seconds(1));
  EXPECT_EQ(ToRpcStatus(back).SerializeAsString(), bytes);

  absl::Status invalid = InvalidFields({{"amount", "must be > 0"}});
  absl::Status invalid_back = FromRpcStatus(ToRpcStatus(invalid));
  ASSERT_EQ(FieldViolationsOf(invalid_back).size(), 1u);
  EXPECT_EQ(FieldViolationsOf(invalid_back)[0].field, "amount");
}

TEST(GrpcStatusTest, UnreadableStoredStatusIsInternal) {
  grpc::Status s = GrpcStatusFromRpcStatusBytes("\xff\xff garbage");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(Parse(s).info.reason(), "INTERNAL");
}

// Found by tests/fuzz/fuzz_stored_outcome: a stored code outside 1..16 was
// cast to grpc::StatusCode / absl::StatusCode as is (undefined behaviour).
TEST(GrpcStatusTest, StoredCodeOutsideGrpcSetIsNotCast) {
  google::rpc::Status rpc;
  rpc.set_code(43);
  rpc.set_message("declined");
  grpc::Status s = GrpcStatusFromRpcStatusBytes(rpc.SerializeAsString());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
  absl::Status back = FromRpcStatus(rpc);
  EXPECT_EQ(back.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(ToGrpcStatus(back).error_code(), grpc::StatusCode::UNKNOWN);
  rpc.set_code(-1);
  EXPECT_EQ(FromRpcStatus(rpc).code(), absl::StatusCode::kUnknown);
}

TEST(FingerprintTest, SameContentSameFingerprintDifferentContentDiffers) {
  const paykka::MerchantConfig merchant = testing::FingerprintMerchant();
  const absl::Time now = absl::FromUnixSeconds(1767225600);
  v1::CreateCheckoutRequest a = testing::ValidCheckout(now);
  v1::CreateCheckoutRequest b = a;
  EXPECT_EQ(Fingerprint(merchant, a), Fingerprint(merchant, b));
  EXPECT_EQ(Fingerprint(merchant, a).rfind("checkout:", 0), 0u);
  b.set_amount(a.amount() + 1);
  EXPECT_NE(Fingerprint(merchant, a), Fingerprint(merchant, b));

  v1::ChargeRecurringRequest c = testing::ValidCharge();
  v1::ChargeRecurringRequest d = c;
  // ChargeRecurring always sends mit=true and RECURRING: the same body.
  d.set_mit(true);
  d.set_payment_type(v1::PAYMENT_TYPE_RECURRING);
  EXPECT_EQ(Fingerprint(merchant, c), Fingerprint(merchant, d));
  EXPECT_EQ(Fingerprint(merchant, c).rfind("charge:", 0), 0u);
  d.mutable_payment()->set_token("TK-other");
  EXPECT_NE(Fingerprint(merchant, c), Fingerprint(merchant, d));
}

// Finding 7: the fingerprint is what PayKKa receives. An empty checkout
// payment_method is not sent (the shopper chooses), so it is not the same
// request as an explicit BANKCARD.
TEST(FingerprintTest, IsThePaykkaBodyNotTheProto) {
  const paykka::MerchantConfig merchant = testing::FingerprintMerchant();
  const absl::Time now = absl::FromUnixSeconds(1767225600);
  v1::CreateCheckoutRequest a = testing::ValidCheckout(now);
  a.mutable_payment()->clear_payment_method();
  a.mutable_payment()->set_store_payment_method(false);
  v1::CreateCheckoutRequest b = a;
  b.mutable_payment()->set_payment_method("BANKCARD");
  EXPECT_NE(Fingerprint(merchant, a), Fingerprint(merchant, b));
  // A ChargeRecurring's empty payment_method is sent as BANKCARD: the same.
  v1::ChargeRecurringRequest c = testing::ValidCharge();
  c.mutable_payment()->clear_payment_method();
  v1::ChargeRecurringRequest d = c;
  d.mutable_payment()->set_payment_method("BANKCARD");
  EXPECT_EQ(Fingerprint(merchant, c), Fingerprint(merchant, d));
  // Same body, another merchant or family: different.
  paykka::MerchantConfig other = merchant;
  other.merchant_id = "M-other";
  EXPECT_NE(Fingerprint(merchant, a), Fingerprint(other, a));
}

}  // namespace
}  // namespace payorch::service
