#include "service/request_logger.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace payorch::service {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

RequestLogEntry Entry(const std::string& code) {
  RequestLogEntry e;
  e.method = "CreateCheckout";
  e.request_id = "r1";
  e.merchant_id = "M1";
  e.trans_id = "T1";
  e.code = code;
  return e;
}

// Everything the logger wrote to a temporary FILE.
std::string Written(LogLevel min, const std::vector<RequestLogEntry>& entries) {
  std::FILE* f = std::tmpfile();
  JsonLineLogger logger(f, min);
  for (const auto& e : entries) logger.Log(e);
  std::rewind(f);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

TEST(RequestLoggerTest, WritesOneJsonLinePerEntryWithItsLevel) {
  std::string out =
      Written(LogLevel::kInfo, {Entry("OK"), Entry("UNAVAILABLE")});
  std::vector<std::string> lines;
  for (size_t start = 0, nl; (nl = out.find('\n', start)) != std::string::npos;
       start = nl + 1) {
    lines.push_back(out.substr(start, nl - start));
  }
  ASSERT_EQ(lines.size(), 2u);
  nlohmann::json first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first["level"], "info");
  EXPECT_EQ(first["method"], "CreateCheckout");
  EXPECT_EQ(first["trans_id"], "T1");
  EXPECT_EQ(nlohmann::json::parse(lines[1])["level"], "warning");
}

TEST(RequestLoggerTest, MinimumLevelFiltersQuieterEntries) {
  RequestLogEntry lost_write = Entry("OK");
  lost_write.store_error = "lease lost";
  std::string out =
      Written(LogLevel::kWarning,
              {Entry("OK"), Entry("NOT_FOUND"), lost_write, Entry("INTERNAL")});
  EXPECT_THAT(out, Not(HasSubstr("NOT_FOUND")));
  EXPECT_THAT(out, HasSubstr("lease lost"));
  EXPECT_THAT(out, HasSubstr("\"level\":\"error\""));
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2);
}

TEST(RequestLoggerTest, SeverityFollowsTheCode) {
  EXPECT_EQ(SeverityOf(Entry("OK")), LogLevel::kInfo);
  EXPECT_EQ(SeverityOf(Entry("INVALID_ARGUMENT")), LogLevel::kInfo);
  EXPECT_EQ(SeverityOf(Entry("RESOURCE_EXHAUSTED")), LogLevel::kWarning);
  EXPECT_EQ(SeverityOf(Entry("DEADLINE_EXCEEDED")), LogLevel::kWarning);
  EXPECT_EQ(SeverityOf(Entry("INTERNAL")), LogLevel::kError);
}

TEST(RequestLoggerTest, ParsesLevelNames) {
  EXPECT_EQ(ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_EQ(ParseLogLevel("warning"), LogLevel::kWarning);
  EXPECT_FALSE(ParseLogLevel("loud").has_value());
}

TEST(RequestLoggerTest, InvalidUtf8FromCallersDoesNotBreakTheLine) {
  RequestLogEntry e = Entry("OK");
  e.trans_id = std::string("bad\xff\xfe", 5);
  std::string out = Written(LogLevel::kInfo, {e});
  EXPECT_NO_THROW(nlohmann::json::parse(out.substr(0, out.find('\n'))));
}

TEST(RequestLoggerTest, ConfigReloadLinesSayWhatIsInForce) {
  std::FILE* f = std::tmpfile();
  {
    JsonLineLogger logger(f, LogLevel::kInfo);
    logger.LogConfigReload("merchants", "/etc/payorch/merchants.json",
                           absl::OkStatus(), 3);
    logger.LogConfigReload(
        "merchants", "/etc/payorch/merchants.json",
        absl::InvalidArgumentError("merchant M1: private_key_file: missing"),
        3);
  }
  std::rewind(f);
  char buf[4096];
  std::string out(buf, std::fread(buf, 1, sizeof buf, f));
  std::fclose(f);
  size_t nl = out.find('\n');
  ASSERT_NE(nl, std::string::npos);
  nlohmann::json applied = nlohmann::json::parse(out.substr(0, nl));
  nlohmann::json rejected = nlohmann::json::parse(out.substr(nl + 1));
  EXPECT_EQ(applied["level"], "info");
  EXPECT_EQ(applied["msg"], "merchant configuration reloaded");
  EXPECT_EQ(applied["entries"], 3);
  EXPECT_EQ(rejected["level"], "error");
  EXPECT_EQ(rejected["result"], "rejected");
  EXPECT_EQ(rejected["in_force"], "previous");
  EXPECT_EQ(rejected["error"], "merchant M1: private_key_file: missing");
}

}  // namespace
}  // namespace payorch::service
