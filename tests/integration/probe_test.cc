// `payorchctl probe` against the real paykka-sandbox, as a merchant's
// engineer runs it before going live: the default sandbox confirms every
// assumption; each protocol variant (another Query Session path, duplicate
// refusal, signing recipe) is named with its fix; payorchd configured with
// the fix passes the idempotency flow against that variant. The probe runs
// as its own process (the payorchctl binary) and talks to the sandbox
// directly; its --json report is parsed here.
#include <signal.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/integration/test_util.h"
#include "tests/integration/variant_flow.h"

namespace payorch::testing {
namespace {

namespace v1 = payorch::v1;
using nlohmann::json;

struct ProbeRun {
  int exit_code = -1;
  json report;       // --json
  std::string text;  // the human table (without --json)
};

absl::StatusOr<ProbeRun> Probe(const Stack& s, bool as_json = true) {
  const std::string out = s.dir().File("probe.out");
  auto code = RunCommand(absl::StrCat(
      BinaryPath("payorchctl"),
      " probe --merchants=", s.dir().File("merchants.json"),
      " --merchant_id=", Stack::kMerchantId, " --allow_http --timeout=10s",
      as_json ? " --json" : "", " > ", out, " 2>&1; echo $?"));
  if (!code.ok()) return code.status();
  ProbeRun run;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*code), &run.exit_code)) {
    return absl::InternalError("no exit code: " + *code);
  }
  auto text = RunCommand("cat " + out);
  if (!text.ok()) return text.status();
  run.text = *text;
  if (as_json) {
    run.report = json::parse(run.text, nullptr, false);
    if (!run.report.is_object()) {
      return absl::InternalError("probe --json printed no JSON: " + run.text);
    }
  }
  return run;
}

// The finding with `id` (null if absent).
json FindingOf(const json& report, const std::string& id) {
  for (const json& f : report["findings"]) {
    if (f["id"] == id) return f;
  }
  return nullptr;
}

// Every finding CONFIRMED except those in `refuted` (REFUTED) and `unknown`.
void ExpectStatuses(const json& report, const std::set<std::string>& refuted,
                    const std::set<std::string>& unknown = {}) {
  ASSERT_EQ(report["findings"].size(), 8u) << report.dump(2);
  for (const json& f : report["findings"]) {
    const std::string id = f["id"];
    const char* want = refuted.count(id)   ? "REFUTED"
                       : unknown.count(id) ? "UNKNOWN"
                                           : "CONFIRMED";
    EXPECT_EQ(f["status"], want) << f.dump(2);
    EXPECT_FALSE(f["evidence"].get<std::string>().empty()) << f.dump(2);
  }
}

// Applies the probe's config_to_apply to kMerchantId in payorchd's
// merchants.json and restarts replica 0 with it.
absl::Status ApplyAndRestart(Stack& s, const json& config) {
  auto text = RunCommand("cat " + s.dir().File("merchants.json"));
  if (!text.ok()) return text.status();
  json merchants = json::parse(*text);
  for (json& m : merchants["merchants"]) {
    if (m["merchant_id"] == Stack::kMerchantId) m.update(config);
  }
  s.dir().Write("merchants.json", merchants.dump(2));
  if (absl::Status st = s.KillPayorchd(0, SIGTERM); !st.ok()) return st;
  return s.StartPayorchd(0);
}

std::unique_ptr<Stack> StartStack(std::vector<std::string> sandbox_args) {
  StackOptions options = StackOptions::Payorchd({});
  options.redis_cluster = false;  // FLUSHALL on one server
  options.sandbox_args = std::move(sandbox_args);
  auto stack = Stack::Start(options);
  EXPECT_TRUE(stack.ok()) << stack.status();
  return stack.ok() ? *std::move(stack) : nullptr;
}

TEST(ProbeTest, DefaultSandboxConfirmsEveryAssumption) {
  std::unique_ptr<Stack> s = StartStack({});
  ASSERT_NE(s, nullptr);
  auto run = Probe(*s);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->exit_code, 0) << run->text;
  EXPECT_EQ(run->report["all_confirmed"], true);
  ExpectStatuses(run->report, {});
  EXPECT_EQ(run->report["config_to_apply"], json::object());
  EXPECT_EQ(run->report["merchant_id"], Stack::kMerchantId);
  EXPECT_TRUE(
      absl::StartsWith(run->report["session_id"].get<std::string>(), "CS"));
  EXPECT_EQ(run->report["not_checked"].size(), 3u);
  // The evidence names what PayKKa answered to the repeated trans_id.
  EXPECT_TRUE(absl::StrContains(
      FindingOf(run->report, "duplicate_trans_id_refused")["evidence"]
          .get<std::string>(),
      "HTTP 400, ret_code 010000 (duplicate trans_id), no object returned"));
  // Only the probe's session: never an order, never a second session.
  auto counters = s->Counters();
  ASSERT_TRUE(counters.ok());
  const std::string trans_id = run->report["trans_id"];
  EXPECT_EQ((*counters)["creates_by_trans_id"].value(trans_id, 0), 1);
  EXPECT_EQ((*counters)["charges_by_trans_id"].value(trans_id, 0), 0);

  auto table = Probe(*s, /*as_json=*/false);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_TRUE(absl::StrContains(table->text, "CONFIRMED  query_session_path"))
      << table->text;
  EXPECT_TRUE(absl::StrContains(table->text, "No settings to change"))
      << table->text;
}

TEST(ProbeTest, RefusesProductionAndPlainHttpWithoutTheirFlags) {
  TempDir dir;
  auto keys = RunCommand(absl::StrCat(
      "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ",
      dir.File("m.pem"), " 2>/dev/null"));
  ASSERT_TRUE(keys.ok()) << keys.status();
  for (const char* base_url :
       {"production", "production-eu", "https://openapi.paykka.com/",
        "http://127.0.0.1:9"}) {
    SCOPED_TRACE(base_url);
    dir.Write("merchants.json", json{{"merchants",
                                      {{{"merchant_id", "M1"},
                                        {"app_id", "A1"},
                                        {"private_key_file", dir.File("m.pem")},
                                        {"client_key", "ck"},
                                        {"base_url", base_url}}}}}
                                    .dump());
    auto out = RunCommand(
        absl::StrCat(BinaryPath("payorchctl"), " probe --merchants=",
                     dir.File("merchants.json"), " 2>&1; echo \"exit $?\""));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_TRUE(absl::StrContains(*out, "exit 2")) << *out;
    EXPECT_TRUE(absl::StrContains(*out, "--allow_production") ||
                absl::StrContains(*out, "--allow_http"))
        << *out;
  }
}

// Another Query Session path: the probe finds it among the alternatives;
// with it configured the idempotency flow passes and the probe confirms.
TEST(ProbeTest, QuerySessionPathVariantIsNamedAndFixed) {
  std::unique_ptr<Stack> s =
      StartStack({"--query_session_path=/v3/payment/acq/session/get"});
  ASSERT_NE(s, nullptr);
  auto run = Probe(*s);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->exit_code, 3) << run->text;
  ExpectStatuses(run->report, {"query_session_path"});
  const json f = FindingOf(run->report, "query_session_path");
  EXPECT_TRUE(absl::StrContains(f["evidence"].get<std::string>(),
                                "/v3/payment/acq/session/query: HTTP 404"))
      << f.dump(2);
  const json fix = {{"query_session_path", "/v3/payment/acq/session/get"}};
  EXPECT_EQ(run->report["config_to_apply"], fix);

  ASSERT_TRUE(ApplyAndRestart(*s, fix).ok());
  ExpectCheckoutAdoptionFlow(*s, 1, "probe-path");
  auto again = Probe(*s);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->exit_code, 0) << again->text;
}

// A body-only response signature: only the "body" recipe verifies.
TEST(ProbeTest, SigningRecipeVariantIsNamedAndFixed) {
  std::unique_ptr<Stack> s = StartStack({"--response_sign_recipe=body"});
  ASSERT_NE(s, nullptr);
  auto run = Probe(*s);
  ASSERT_TRUE(run.ok()) << run.status();
  ExpectStatuses(run->report, {"response_sign_recipe"});
  const json fix = {{"response_sign_recipe", "body"}};
  EXPECT_EQ(run->report["config_to_apply"], fix);
  EXPECT_TRUE(absl::StrContains(
      FindingOf(run->report, "response_sign_recipe")["evidence"]
          .get<std::string>(),
      "0 verify with timestamp_nonce_body"));

  ASSERT_TRUE(ApplyAndRestart(*s, fix).ok());
  ExpectCheckoutAdoptionFlow(*s, 1, "probe-recipe");
  auto again = Probe(*s);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->exit_code, 0) << again->text;
}

// Payorch's record is lost (FLUSHALL) and PayKKa refuses the repeat while
// its session is not visible to queries yet (visibility delay): with the
// duplicate code configured the answer is PSP_OUTCOME_UNKNOWN and the retry
// adopts the one session; without it the refusal is stored.
grpc::Status LostRecordRepeat(Stack& s, const std::string& tag,
                              std::string* first_session) {
  auto create = [&s](const v1::CreateCheckoutRequest& req,
                     v1::CreateCheckoutResponse* resp) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return s.Stub()->CreateCheckout(&ctx, req, resp);
  };
  v1::CreateCheckoutRequest req = DropInCheckout(NewTransId(tag));
  EXPECT_TRUE(s.SetFaults({{{"endpoint", "/v3/payment/acq/session"},
                            {"visibility_delay_ms", 2000}}})
                  .ok());
  v1::CreateCheckoutResponse resp;
  grpc::Status st = create(req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  *first_session = resp.session_id();
  EXPECT_TRUE(
      RunCommand(absl::StrCat("redis-cli -p ", s.redis_port(), " FLUSHALL"))
          .ok());
  st = create(req, &resp);
  if (!st.ok() && ReasonOf(st) == "PSP_OUTCOME_UNKNOWN") {
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
    for (int i = 0; i < 100 && !st.ok(); ++i) {
      absl::SleepFor(absl::Milliseconds(200));
      st = create(req, &resp);
      if (st.ok()) {
        EXPECT_EQ(resp.session_id(), *first_session);
      }
    }
  }
  auto counts = s.SandboxCall("GET", "/sandbox/trans-ids/" + req.trans_id());
  EXPECT_TRUE(counts.ok() && (*counts)["objects"] == 1);
  return st;
}

TEST(ProbeTest, DuplicateWordingVariantIsNamedAndFixed) {
  std::unique_ptr<Stack> s = StartStack(
      {"--duplicate_trans_id_status=409", "--duplicate_trans_id_code=206099",
       "--duplicate_trans_id_msg=Repeated merchant order number"});
  ASSERT_NE(s, nullptr);
  auto run = Probe(*s);
  ASSERT_TRUE(run.ok()) << run.status();
  ExpectStatuses(run->report, {"duplicate_trans_id_codes"});
  const json f = FindingOf(run->report, "duplicate_trans_id_codes");
  EXPECT_TRUE(absl::StrContains(
      f["evidence"].get<std::string>(),
      "HTTP 409, ret_code 206099 (Repeated merchant order number)"))
      << f.dump(2);
  const json fix = {{"duplicate_trans_id_codes", {"206099"}}};
  EXPECT_EQ(run->report["config_to_apply"], fix);

  // Without the fix: the refusal of an existing session is stored.
  std::string session;
  grpc::Status before = LostRecordRepeat(*s, "probe-dup-before", &session);
  EXPECT_EQ(ReasonOf(before), "PSP_REJECTED") << before.error_message();

  ASSERT_TRUE(ApplyAndRestart(*s, fix).ok());
  grpc::Status after = LostRecordRepeat(*s, "probe-dup-after", &session);
  EXPECT_TRUE(after.ok()) << ReasonOf(after) << " " << after.error_message();
  ExpectCheckoutAdoptionFlow(*s, 1, "probe-dup");
  auto again = Probe(*s);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->exit_code, 0) << again->text;
}

// PayKKa answers a repeat with the existing session: named, and no setting
// is needed (payorch takes the same session as the answer).
TEST(ProbeTest, ReturnExistingModeIsNamedWithoutASetting) {
  std::unique_ptr<Stack> s =
      StartStack({"--duplicate_trans_id=return_existing"});
  ASSERT_NE(s, nullptr);
  auto run = Probe(*s);
  ASSERT_TRUE(run.ok()) << run.status();
  ExpectStatuses(run->report, {"duplicate_trans_id_refused"},
                 {"duplicate_trans_id_codes"});
  const json f = FindingOf(run->report, "duplicate_trans_id_refused");
  EXPECT_TRUE(absl::StrContains(f["evidence"].get<std::string>(),
                                "returned the existing session"))
      << f.dump(2);
  EXPECT_TRUE(
      absl::StrContains(f["advice"].get<std::string>(), "no setting needed"));
  EXPECT_EQ(run->report["config_to_apply"], json::object());
  ExpectCheckoutAdoptionFlow(*s, 1, "probe-existing");
  std::string session;
  grpc::Status lost = LostRecordRepeat(*s, "probe-existing-lost", &session);
  EXPECT_TRUE(lost.ok()) << ReasonOf(lost) << " " << lost.error_message();
}

}  // namespace
}  // namespace payorch::testing
