#include "adapters/paykka/response_mapping.h"

#include <optional>
#include <ostream>
#include <string>

#include "common/errors.h"
#include "gtest/gtest.h"

namespace payorch::paykka {
namespace {

absl::StatusOr<HttpResponse> Http(int status, std::string body,
                                  std::string retry_after = "") {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  if (!retry_after.empty()) r.headers["retry-after"] = retry_after;
  return r;
}

std::string Env(absl::string_view code, absl::string_view msg = "m") {
  return absl::StrCat(R"({"ret_code":")", code, R"(","ret_msg":")", msg,
                      R"("})");
}

const absl::Status kSigOk = absl::OkStatus();
const absl::Status kSigBad = absl::UnauthenticatedError("bad signature");

struct Row {
  std::string name;
  absl::StatusOr<HttpResponse> result;
  absl::Status signature;
  // Expected for a mutating call, then for a query. nullopt reason = OK.
  absl::StatusCode mutating_code;
  std::optional<Reason> mutating_reason;
  absl::StatusCode query_code;
  std::optional<Reason> query_reason;
};

// gtest prints the row by name (not as raw bytes) in test names and failures.
void PrintTo(const Row& row, std::ostream* os) { *os << row.name; }

using C = absl::StatusCode;
using R = Reason;

std::vector<Row> Rows() {
  const std::string ok_body =
      R"({"ret_code":"000000","ret_msg":"ok","data":{"order_id":"GW1"}})";
  return {
      {"TransportNotSent",
       TransportError(C::kUnavailable, SendState::kNotSent, "refused"), kSigOk,
       C::kUnavailable, R::kPspUnavailable, C::kUnavailable,
       R::kPspUnavailable},
      {"TransportNotSentDeadline",
       TransportError(C::kDeadlineExceeded, SendState::kNotSent, "late"),
       kSigOk, C::kDeadlineExceeded, R::kDeadlineExceeded, C::kDeadlineExceeded,
       R::kDeadlineExceeded},
      {"TransportMaybeSentTimeout",
       TransportError(C::kDeadlineExceeded, SendState::kMaybeSent, "timeout"),
       kSigOk, C::kUnavailable, R::kPspOutcomeUnknown, C::kUnavailable,
       R::kPspUnavailable},
      {"TransportMaybeSentReset",
       TransportError(C::kUnavailable, SendState::kMaybeSent, "reset"), kSigOk,
       C::kUnavailable, R::kPspOutcomeUnknown, C::kUnavailable,
       R::kPspUnavailable},
      {"Http200Success", Http(200, ok_body), kSigOk, C::kOk, std::nullopt,
       C::kOk, std::nullopt},
      {"Http200NoRetCodeTolerated", Http(200, R"({"session_id":"CS1"})"),
       kSigOk, C::kOk, std::nullopt, C::kOk, std::nullopt},
      {"Http200MalformedJson", Http(200, "{not json"), kSigOk, C::kUnavailable,
       R::kPspOutcomeUnknown, C::kUnavailable, R::kPspBadResponse},
      {"Http200JsonArray", Http(200, "[1,2]"), kSigOk, C::kUnavailable,
       R::kPspOutcomeUnknown, C::kUnavailable, R::kPspBadResponse},
      {"Http200BadSignature", Http(200, ok_body), kSigBad, C::kUnavailable,
       R::kPspOutcomeUnknown, C::kUnavailable, R::kPspBadResponse},
      {"Http400InvalidRequest", Http(400, Env("010000")), kSigOk,
       C::kFailedPrecondition, R::kPspRejected, C::kFailedPrecondition,
       R::kPspRejected},
      {"Http400BadSignatureIsUnknown", Http(400, Env("010000")), kSigBad,
       C::kUnavailable, R::kPspOutcomeUnknown, C::kUnavailable,
       R::kPspBadResponse},
      {"Http400TxErrorCode", Http(400, Env("1004")), kSigOk,
       C::kFailedPrecondition, R::kPspRejected, C::kFailedPrecondition,
       R::kPspRejected},
      // Finding 5: a 4xx without a PayKKa envelope (a proxy, WAF or load
      // balancer page) is not a refusal: it may have been processed.
      {"Http400HtmlBody", Http(400, "<html>bad</html>"), kSigOk,
       C::kUnavailable, R::kPspOutcomeUnknown, C::kUnavailable,
       R::kPspUnavailable},
      {"Http409HtmlFromProxy", Http(409, "<html>conflict</html>"), kSigOk,
       C::kUnavailable, R::kPspOutcomeUnknown, C::kUnavailable,
       R::kPspUnavailable},
      {"Http499Empty", Http(499, ""), kSigOk, C::kUnavailable,
       R::kPspOutcomeUnknown, C::kUnavailable, R::kPspUnavailable},
      {"Http404JsonWithoutRetCode", Http(404, R"({"error":"no route"})"),
       kSigOk, C::kUnavailable, R::kPspOutcomeUnknown, C::kUnavailable,
       R::kPspUnavailable},
      {"Http408NotProcessed", Http(408, "<html>timeout</html>"), kSigOk,
       C::kUnavailable, R::kPspUnavailable, C::kUnavailable,
       R::kPspUnavailable},
      {"Http425NotProcessed", Http(425, ""), kSigBad, C::kUnavailable,
       R::kPspUnavailable, C::kUnavailable, R::kPspUnavailable},
      // Finding 1: a replayed nonce means an earlier copy may have been
      // processed; never an auth failure for a create.
      {"Http401NonceReplay206003", Http(401, Env("206003", "nonce used")),
       kSigOk, C::kUnavailable, R::kPspOutcomeUnknown, C::kInternal,
       R::kPspAuthFailed},
      {"Http401", Http(401, Env("206002")), kSigOk, C::kInternal,
       R::kPspAuthFailed, C::kInternal, R::kPspAuthFailed},
      {"Http401NoBody", Http(401, ""), kSigBad, C::kInternal, R::kPspAuthFailed,
       C::kInternal, R::kPspAuthFailed},
      {"Http403", Http(403, ""), kSigOk, C::kInternal, R::kPspAuthFailed,
       C::kInternal, R::kPspAuthFailed},
      {"Http404OrderNotFound", Http(404, Env("206024")), kSigOk, C::kNotFound,
       R::kOrderNotFound, C::kNotFound, R::kOrderNotFound},
      {"Http404Unknown", Http(404, "not found"), kSigOk, C::kUnavailable,
       R::kPspOutcomeUnknown, C::kUnavailable, R::kPspUnavailable},
      {"Http418WithSuccessCode", Http(418, Env("000000")), kSigOk,
       C::kUnavailable, R::kPspOutcomeUnknown, C::kUnavailable,
       R::kPspUnavailable},
      {"Http429", Http(429, Env("429001")), kSigOk, C::kResourceExhausted,
       R::kPspRateLimited, C::kResourceExhausted, R::kPspRateLimited},
      {"Http500", Http(500, Env("999999")), kSigOk, C::kUnavailable,
       R::kPspOutcomeUnknown, C::kUnavailable, R::kPspUnavailable},
      {"Http502HtmlBody", Http(502, "<html>"), kSigBad, C::kUnavailable,
       R::kPspOutcomeUnknown, C::kUnavailable, R::kPspUnavailable},
      {"Http503", Http(503, ""), kSigOk, C::kUnavailable, R::kPspOutcomeUnknown,
       C::kUnavailable, R::kPspUnavailable},
      {"Http302", Http(302, ""), kSigOk, C::kUnavailable, R::kPspOutcomeUnknown,
       C::kUnavailable, R::kPspBadResponse},
      {"RetCode999999On200", Http(200, Env("999999")), kSigOk, C::kUnavailable,
       R::kPspOutcomeUnknown, C::kUnavailable, R::kPspUnavailable},
      {"RetCode010000On200", Http(200, Env("010000")), kSigOk,
       C::kFailedPrecondition, R::kPspRejected, C::kFailedPrecondition,
       R::kPspRejected},
      {"RetCodeUnknownOn200", Http(200, Env("210002")), kSigOk,
       C::kFailedPrecondition, R::kPspRejected, C::kFailedPrecondition,
       R::kPspRejected},
      {"RetCode206011", Http(400, Env("206011")), kSigOk, C::kNotFound,
       R::kSessionNotFound, C::kNotFound, R::kSessionNotFound},
      {"RetCode206024On200", Http(200, Env("206024")), kSigOk, C::kNotFound,
       R::kOrderNotFound, C::kNotFound, R::kOrderNotFound},
  };
}

class ClassifyTableTest : public ::testing::TestWithParam<Row> {};

TEST_P(ClassifyTableTest, MutatingCall) {
  const Row& row = GetParam();
  absl::StatusOr<Envelope> got =
      ClassifyResponse(CallKind::kMutating, row.result, row.signature);
  EXPECT_EQ(got.status().code(), row.mutating_code) << got.status();
  EXPECT_EQ(ReasonOf(got.status()), row.mutating_reason) << got.status();
}

TEST_P(ClassifyTableTest, Query) {
  const Row& row = GetParam();
  absl::StatusOr<Envelope> got =
      ClassifyResponse(CallKind::kQuery, row.result, row.signature);
  EXPECT_EQ(got.status().code(), row.query_code) << got.status();
  EXPECT_EQ(ReasonOf(got.status()), row.query_reason) << got.status();
}

INSTANTIATE_TEST_SUITE_P(AllRows, ClassifyTableTest,
                         ::testing::ValuesIn(Rows()),
                         [](const ::testing::TestParamInfo<Row>& info) {
                           return info.param.name;
                         });

// Every auth ret_code, on the HTTP statuses PayKKa may pair it with.
TEST(ClassifyResponseTest, AuthRetCodesArePspAuthFailedWithRetCode) {
  for (const char* code :
       {"206002", "206003", "206004", "206005", "206006", "206007", "206008"}) {
    for (int http : {200, 400}) {
      for (CallKind kind : {CallKind::kMutating, CallKind::kQuery}) {
        // 206003 on a create may be a replayed nonce: maybe processed.
        if (kind == CallKind::kMutating && std::string(code) == "206003") {
          continue;
        }
        absl::Status s =
            ClassifyResponse(kind, Http(http, Env(code)), kSigOk).status();
        EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << code;
        EXPECT_TRUE(HasReason(s, Reason::kPspAuthFailed)) << code << s;
        Metadata md = MetadataOf(s);
        EXPECT_NE(std::find(md.begin(), md.end(),
                            std::make_pair(std::string("psp_ret_code"),
                                           std::string(code))),
                  md.end())
            << code;
      }
    }
  }
}

TEST(ClassifyResponseTest, RejectedCarriesRetCodeAndTruncatedRetMsg) {
  std::string long_msg(1000, 'x');
  absl::Status s = ClassifyResponse(CallKind::kMutating,
                                    Http(400, Env("010000", long_msg)), kSigOk)
                       .status();
  ASSERT_TRUE(HasReason(s, Reason::kPspRejected));
  Metadata md = MetadataOf(s);
  std::string ret_code, ret_msg, http;
  for (const auto& [k, v] : md) {
    if (k == "psp_ret_code") ret_code = v;
    if (k == "psp_ret_msg") ret_msg = v;
    if (k == "psp_http_status") http = v;
  }
  EXPECT_EQ(ret_code, "010000");
  EXPECT_EQ(http, "400");
  EXPECT_LE(ret_msg.size(), kMaxRetMsgBytes + 3);
  EXPECT_LT(s.message().size(), 600u);
}

// The duplicate fast path: a listed code on a create's refusal is marked,
// whatever the HTTP status of the envelope; unlisted codes, queries and
// codes with another meaning are not.
TEST(ClassifyResponseTest, ListedDuplicateCodeMarksTheRefusal) {
  const std::vector<std::string> codes = {"206099", "010000"};
  for (int http : {400, 409, 422, 200}) {
    absl::Status s = ClassifyResponse(CallKind::kMutating,
                                      Http(http, Env("206099")), kSigOk, codes)
                         .status();
    EXPECT_TRUE(HasReason(s, Reason::kPspRejected)) << http << " " << s;
    EXPECT_TRUE(IsDuplicateTransIdRefusal(s)) << http << " " << s;
  }
  absl::Status listed_known =
      ClassifyResponse(CallKind::kMutating, Http(400, Env("010000")), kSigOk,
                       codes)
          .status();
  EXPECT_TRUE(IsDuplicateTransIdRefusal(listed_known));
  absl::Status unlisted =
      ClassifyResponse(CallKind::kMutating, Http(400, Env("300001")), kSigOk,
                       codes)
          .status();
  EXPECT_TRUE(HasReason(unlisted, Reason::kPspRejected));
  EXPECT_FALSE(IsDuplicateTransIdRefusal(unlisted));
  absl::Status no_list =
      ClassifyResponse(CallKind::kMutating, Http(400, Env("206099")), kSigOk)
          .status();
  EXPECT_FALSE(IsDuplicateTransIdRefusal(no_list));
  absl::Status query = ClassifyResponse(CallKind::kQuery,
                                        Http(400, Env("206099")), kSigOk, codes)
                           .status();
  EXPECT_TRUE(HasReason(query, Reason::kPspRejected));
  EXPECT_FALSE(IsDuplicateTransIdRefusal(query));
  // A wrongly signed or proxy answer is never a refusal, listed or not.
  absl::Status unsigned_answer =
      ClassifyResponse(CallKind::kMutating, Http(400, Env("206099")), kSigBad,
                       codes)
          .status();
  EXPECT_TRUE(HasReason(unsigned_answer, Reason::kPspOutcomeUnknown));
  EXPECT_FALSE(IsDuplicateTransIdRefusal(unsigned_answer));
}

TEST(ClassifyResponseTest, RetCodesWithAMeaningOfTheirOwn) {
  for (const char* code : {"000000", "206024", "206011", "206003", "999999"}) {
    EXPECT_TRUE(RetCodeHasOwnMeaning(code)) << code;
  }
  for (const char* code : {"010000", "206099", "2015", "206017"}) {
    EXPECT_FALSE(RetCodeHasOwnMeaning(code)) << code;
  }
}

TEST(ClassifyResponseTest, MessagesNeverHoldTheBody) {
  const std::string secret_body =
      R"({"ret_code":"000000","data":{"token":"TK_SECRET_TOKEN"}})";
  for (CallKind kind : {CallKind::kMutating, CallKind::kQuery}) {
    absl::Status s =
        ClassifyResponse(kind, Http(200, secret_body), kSigBad).status();
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(s.ToString().find("TK_SECRET"), std::string::npos) << s;
  }
}

TEST(ClassifyResponseTest, RateLimitHonoursRetryAfter) {
  absl::Status s =
      ClassifyResponse(CallKind::kQuery, Http(429, "", "7"), kSigOk).status();
  EXPECT_EQ(RetryDelayOf(s), absl::Seconds(7));
  s = ClassifyResponse(CallKind::kQuery, Http(429, ""), kSigOk).status();
  EXPECT_EQ(RetryDelayOf(s), kDefaultRateLimitDelay);
  s = ClassifyResponse(CallKind::kQuery, Http(429, "", "Wed, 21 Oct 2015"),
                       kSigOk)
          .status();
  EXPECT_EQ(RetryDelayOf(s), kDefaultRateLimitDelay);
}

TEST(ClassifyResponseTest, SuccessKeepsEnvelope) {
  absl::StatusOr<Envelope> env = ClassifyResponse(
      CallKind::kQuery,
      Http(200, R"({"ret_code":"000000","ret_msg":"ok","data":{"a":1}})"),
      kSigOk);
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->ret_code, "000000");
  EXPECT_EQ(env->http_status, 200);
  EXPECT_EQ(env->body["data"]["a"], 1);
}

TEST(ClassifyResponseTest, BadResponseDependsOnKind) {
  EXPECT_TRUE(HasReason(BadResponse(CallKind::kMutating, "x", 200),
                        Reason::kPspOutcomeUnknown));
  EXPECT_TRUE(HasReason(BadResponse(CallKind::kQuery, "x", 200),
                        Reason::kPspBadResponse));
}

}  // namespace
}  // namespace payorch::paykka
