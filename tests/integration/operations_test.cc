// Operations against real processes (redis-server, paykka-sandbox, payorchd):
// a caller's W3C traceparent follows its call into payorchd's log lines (the
// request line, its PayKKa call and its Redis commands) and comes back in the
// response metadata; /metrics exposes PayKKa, Redis and in-flight series.
#include <grpcpp/grpcpp.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/test_util.h"

namespace payorch::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kTraceId[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kCallerSpan[] = "00f067aa0ba902b7";

class OperationsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto stack = Stack::Start(StackOptions::Payorchd({"--log_level=debug"}));
    ASSERT_TRUE(stack.ok()) << stack.status();
    stack_ = stack->release();
  }
  static void TearDownTestSuite() {
    delete stack_;
    stack_ = nullptr;
  }

  // CreateCheckout with `traceparent` (none when empty); returns the
  // traceparent payorchd sent back.
  static std::string Checkout(const std::string& trans_id,
                              const std::string& traceparent) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, absl::Seconds(20));
    if (!traceparent.empty()) ctx.AddMetadata("traceparent", traceparent);
    v1::CreateCheckoutResponse resp;
    grpc::Status s =
        stack_->Stub()->CreateCheckout(&ctx, DropInCheckout(trans_id), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    auto md = ctx.GetServerInitialMetadata();
    auto it = md.find("traceparent");
    return it == md.end() ? ""
                          : std::string(it->second.data(), it->second.size());
  }

  // payorchd's JSON log lines that carry `trace_id`, once the request line
  // for `trans_id` has been written.
  static std::vector<nlohmann::json> LinesOf(const std::string& trace_id,
                                             const std::string& trans_id) {
    std::vector<nlohmann::json> lines;
    absl::Time give_up = absl::Now() + absl::Seconds(10);
    for (;;) {
      lines.clear();
      bool request_line = false;
      for (absl::string_view l :
           absl::StrSplit(stack_->PayorchdLog(), '\n', absl::SkipEmpty())) {
        auto j = nlohmann::json::parse(l, nullptr, /*allow_exceptions=*/false);
        if (!j.is_object() || j.value("trace_id", "") != trace_id) continue;
        if (j.value("msg", "") == "request" &&
            j.value("trans_id", "") == trans_id) {
          request_line = true;
        }
        lines.push_back(std::move(j));
      }
      if (request_line || absl::Now() > give_up) return lines;
      absl::SleepFor(absl::Milliseconds(50));
    }
  }

  static int Count(const std::vector<nlohmann::json>& lines,
                   const std::string& msg) {
    int n = 0;
    for (const auto& j : lines) n += j.value("msg", "") == msg;
    return n;
  }

  static Stack* stack_;
};

Stack* OperationsTest::stack_ = nullptr;

TEST_F(OperationsTest, CallersTraceparentReachesEveryLogLineAndComesBack) {
  std::string trans_id = NewTransId("trace");
  std::string returned = Checkout(
      trans_id, absl::StrCat("00-", kTraceId, "-", kCallerSpan, "-01"));
  // Same trace and flags; payorch's own span id.
  ASSERT_EQ(returned.size(), 55u) << returned;
  EXPECT_THAT(returned, StartsWith(absl::StrCat("00-", kTraceId, "-")));
  EXPECT_THAT(returned, ::testing::EndsWith("-01"));
  EXPECT_NE(returned.substr(36, 16), kCallerSpan);

  std::vector<nlohmann::json> lines = LinesOf(kTraceId, trans_id);
  EXPECT_EQ(Count(lines, "request"), 1) << stack_->PayorchdLog();
  EXPECT_GE(Count(lines, "paykka call"), 1) << stack_->PayorchdLog();
  EXPECT_GE(Count(lines, "redis command"), 2) << stack_->PayorchdLog();
  for (const auto& j : lines) {
    if (j.value("msg", "") == "paykka call") {
      EXPECT_EQ(j.value("endpoint", ""), "/v3/payment/acq/session");
      EXPECT_EQ(j.value("outcome", ""), "ok");
    }
  }
}

TEST_F(OperationsTest, WithoutOrWithABadTraceparentANewTraceIsStarted) {
  for (std::string sent :
       {std::string(),
        absl::StrCat("00-", std::string(32, '0'), "-", kCallerSpan, "-01"),
        std::string("00-not-a-trace-01"),
        absl::StrCat("00-", kTraceId, "-", kCallerSpan, "-01-extra")}) {
    SCOPED_TRACE(sent);
    std::string trans_id = NewTransId("newtrace");
    std::string returned = Checkout(trans_id, sent);
    ASSERT_EQ(returned.size(), 55u) << returned;
    std::string trace_id = returned.substr(3, 32);
    EXPECT_NE(trace_id, kTraceId);
    EXPECT_NE(trace_id, std::string(32, '0'));
    std::vector<nlohmann::json> lines = LinesOf(trace_id, trans_id);
    EXPECT_EQ(Count(lines, "request"), 1) << stack_->PayorchdLog();
    EXPECT_GE(Count(lines, "paykka call"), 1);
  }
}

TEST_F(OperationsTest, MetricsExposePaykkaRedisAndInFlightSeries) {
  Checkout(NewTransId("metrics"), "");
  auto metrics =
      RunCommand("curl -sf http://" + stack_->http_target() + "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(
      *metrics,
      HasSubstr("payorch_paykka_request_duration_seconds_count{"
                "endpoint=\"/v3/payment/acq/session\",outcome=\"ok\"}"));
  EXPECT_THAT(*metrics, HasSubstr("payorch_paykka_request_duration_seconds_"
                                  "bucket{endpoint=\"/v3/payment/acq/"
                                  "session\",outcome=\"ok\",le=\"0.5\"}"));
  EXPECT_THAT(*metrics, HasSubstr("payorch_paykka_requests_in_flight 0"));
  // A fresh Redis has no scripts cached: EVALSHA answers NOSCRIPT, then EVAL.
  EXPECT_THAT(*metrics,
              ::testing::ContainsRegex(
                  "payorch_redis_command_duration_seconds_count\\{command="
                  "\"eval(sha)?\",outcome=\"ok\"\\} [1-9]"));
  EXPECT_THAT(*metrics, HasSubstr("payorch_requests_in_flight{method="
                                  "\"CreateCheckout\"} 0"));
}

}  // namespace
}  // namespace payorch::testing
