// The probe's reading of PayKKa's answers, over a scripted exchange (the
// real sandbox runs are tests/integration/probe_test.cc): field shapes the
// sandbox never produces, a refused create, the production guard.
#include "adapters/paykka/probe.h"

#include <map>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/adapters/paykka/test_merchant.h"

namespace payorch::paykka {
namespace {

using nlohmann::json;

HttpResponse Answer(int status, json body) {
  HttpResponse r;
  r.status = status;
  r.body = body.dump();
  return r;
}

// PayKKa as a table: path -> answers in order (the last one repeats).
class ScriptedPaykka {
 public:
  void On(const std::string& path, std::vector<HttpResponse> answers) {
    script_[path] = std::move(answers);
  }
  ProbeExchange Exchange() {
    return [this](const HttpRequest& r) -> absl::StatusOr<HttpResponse> {
      requests_.push_back(r);
      for (auto& [path, answers] : script_) {
        if (!absl::EndsWith(r.url, path)) continue;
        HttpResponse next = answers.front();
        if (answers.size() > 1) answers.erase(answers.begin());
        return next;
      }
      return Answer(404, {{"ret_code", "010000"}, {"ret_msg", "no path"}});
    };
  }
  const std::vector<HttpRequest>& requests() const { return requests_; }

 private:
  std::map<std::string, std::vector<HttpResponse>> script_;
  std::vector<HttpRequest> requests_;
};

json FindingOf(const ProbeReport& report, const std::string& id) {
  json all = report.ToJson();
  for (const json& f : all["findings"]) {
    if (f["id"] == id) return f;
  }
  return nullptr;
}

TEST(ProbeTest, ReportsFieldShapesThatDifferFromTheMapping) {
  ScriptedPaykka paykka;
  paykka.On("/v3/payment/acq/session",
            {Answer(200, {{"ret_code", "000000"},
                          {"data",
                           {{"session_id", "CS1"},
                            {"expire_time", "2026-11-30 10:00:00"}}}}),
             Answer(400, {{"ret_code", "010000"}, {"ret_msg", "dup"}})});
  paykka.On("/v3/payment/acq/session/query",
            {Answer(200, {{"ret_code", "000000"},
                          {"data",
                           {{"session_id", "CS1"},
                            {"amount", "100"},
                            {"currency", "USD"},
                            {"status", "OPEN"}}}})});
  paykka.On("/v3/payment/acq/query",
            {Answer(404, {{"ret_code", "206024"}, {"ret_msg", "none"}})});
  ProbeReport report =
      RunProbe(testing::TestMerchant(), ProbeOptions(), paykka.Exchange());
  const json shapes = FindingOf(report, "field_shapes");
  EXPECT_EQ(shapes["status"], "REFUTED");
  const std::string evidence = shapes["evidence"];
  EXPECT_TRUE(absl::StrContains(evidence, "expire_time is a string"))
      << evidence;
  EXPECT_TRUE(absl::StrContains(evidence, "amount is a string \"100\""))
      << evidence;
  EXPECT_TRUE(absl::StrContains(evidence, "status \"OPEN\"")) << evidence;
  // No platform key: the signatures cannot be judged.
  EXPECT_EQ(FindingOf(report, "response_sign_recipe")["status"], "UNKNOWN");
  for (const char* id :
       {"create_session", "query_session_path", "query_session_by_trans_id",
        "unpaid_session_has_no_order", "duplicate_trans_id_refused",
        "duplicate_trans_id_codes"}) {
    EXPECT_EQ(FindingOf(report, id)["status"], "CONFIRMED") << id;
  }
  EXPECT_FALSE(report.AllConfirmed());
  // The probe's creates are the same bytes with the smallest amount.
  ASSERT_EQ(paykka.requests().size(), 6u);
  EXPECT_EQ(paykka.requests()[0].body, paykka.requests()[5].body);
  EXPECT_EQ(json::parse(paykka.requests()[0].body)["amount"], 1);
  EXPECT_TRUE(paykka.requests()[0].at_most_once);
}

TEST(ProbeTest, AmountInAnotherUnitIsReported) {
  ScriptedPaykka paykka;
  paykka.On("/v3/payment/acq/session",
            {Answer(200, {{"ret_code", "000000"},
                          {"data", {{"session_id", "CS1"}, {"amount", 100}}}}),
             Answer(400, {{"ret_code", "010000"}, {"ret_msg", "dup"}})});
  ProbeReport report =
      RunProbe(testing::TestMerchant(), ProbeOptions(), paykka.Exchange());
  const std::string evidence = FindingOf(report, "field_shapes")["evidence"];
  EXPECT_TRUE(absl::StrContains(evidence, "amount is 100 for 1 sent"))
      << evidence;
  // No path answered Query Session: every candidate was tried.
  const json path = FindingOf(report, "query_session_path");
  EXPECT_EQ(path["status"], "UNKNOWN");
  for (absl::string_view candidate : kQuerySessionPathCandidates) {
    EXPECT_TRUE(
        absl::StrContains(path["evidence"].get<std::string>(), candidate));
  }
}

TEST(ProbeTest, RefusedCreateLeavesTheRestUnknown) {
  ScriptedPaykka paykka;
  paykka.On("/v3/payment/acq/session",
            {Answer(401, {{"ret_code", "206003"},
                          {"ret_msg", std::string(300, 'x')}})});
  ProbeReport report =
      RunProbe(testing::TestMerchant(), ProbeOptions(), paykka.Exchange());
  for (const json& f : report.ToJson()["findings"]) {
    EXPECT_EQ(f["status"], "UNKNOWN") << f.dump();
  }
  const json create = FindingOf(report, "create_session");
  EXPECT_TRUE(absl::StrContains(create["evidence"].get<std::string>(),
                                "HTTP 401, ret_code 206003"));
  // ret_msg is cut in the evidence.
  EXPECT_LT(create["evidence"].get<std::string>().size(), 200u);
  EXPECT_TRUE(absl::StrContains(create["advice"].get<std::string>(),
                                "private_key_file"));
  EXPECT_EQ(paykka.requests().size(), 1u);  // nothing after a failed create
  EXPECT_TRUE(absl::StrContains(report.ToTable(), "UNKNOWN    create_session"));
}

TEST(ProbeTest, ProductionAndPlainHttpNeedTheirFlags) {
  EXPECT_TRUE(IsProductionBaseUrl("https://openapi.paykka.com"));
  EXPECT_TRUE(IsProductionBaseUrl("https://openapi.eu.paykka.com:443"));
  EXPECT_FALSE(IsProductionBaseUrl("https://openapi-sandbox.paykka.com"));
  EXPECT_FALSE(IsProductionBaseUrl("https://openapi.paykka.com.evil.test"));
  MerchantConfig prod =
      testing::TestMerchant(false, "https://openapi.paykka.com");
  EXPECT_EQ(CheckProbeTarget(prod, false, false).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(CheckProbeTarget(prod, true, false).ok());
  MerchantConfig local = testing::TestMerchant(false, "http://127.0.0.1:1");
  EXPECT_EQ(CheckProbeTarget(local, false, false).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(CheckProbeTarget(local, false, true).ok());
}

}  // namespace
}  // namespace payorch::paykka
