#include "common/errors.h"

#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace payorch {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Optional;
using ::testing::Pair;
using ::testing::SizeIs;

MATCHER_P2(IsViolation, field, description, "") {
  return arg.field == field && arg.description == description;
}

TEST(ErrorsTest, DomainIsPayorch) { EXPECT_EQ(kErrorDomain, "payorch"); }

TEST(ErrorsTest, ReasonNamesAreUpperSnakeAndUnique) {
  const std::regex upper_snake("[A-Z][A-Z0-9]*(_[A-Z0-9]+)*");
  std::set<std::string> seen;
  for (Reason r : AllReasons()) {
    const std::string name(ReasonName(r));
    EXPECT_TRUE(std::regex_match(name, upper_snake)) << name;
    EXPECT_TRUE(seen.insert(name).second) << "duplicate reason name " << name;
  }
}

TEST(ErrorsTest, AllReasonsListsEveryReasonOnceInDeclarationOrder) {
  const std::vector<Reason> all = AllReasons();
  ASSERT_THAT(all, SizeIs(static_cast<size_t>(Reason::kInternal) + 1));
  EXPECT_EQ(all.front(), Reason::kInvalidField);
  EXPECT_EQ(all.back(), Reason::kInternal);
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(static_cast<size_t>(all[i]), i);
  }
}

TEST(ErrorsTest, KnownReasonNames) {
  EXPECT_EQ(ReasonName(Reason::kInvalidField), "INVALID_FIELD");
  EXPECT_EQ(ReasonName(Reason::kTransIdReused), "TRANS_ID_REUSED");
  EXPECT_EQ(ReasonName(Reason::kPspOutcomeUnknown), "PSP_OUTCOME_UNKNOWN");
  EXPECT_EQ(ReasonName(Reason::kIdempotencyStoreUnavailable),
            "IDEMPOTENCY_STORE_UNAVAILABLE");
  EXPECT_EQ(ReasonName(Reason::kInternal), "INTERNAL");
}

// reason -> gRPC code name, from the README's "Errors" table (rows like
// "| `INVALID_FIELD` | INVALID_ARGUMENT | ... |").
std::map<std::string, std::string> ReadmeErrorTable() {
  std::ifstream file(PAYORCH_SOURCE_DIR "/README.md");
  std::stringstream text;
  text << file.rdbuf();
  std::map<std::string, std::string> rows;
  bool in_errors = false;
  for (absl::string_view line : absl::StrSplit(text.str(), '\n')) {
    if (absl::StartsWith(line, "## ")) in_errors = line == "## Errors";
    if (!in_errors || !absl::StartsWith(line, "| `")) continue;
    std::vector<std::string> cells = absl::StrSplit(line, '|');
    if (cells.size() < 4) continue;
    absl::string_view reason = absl::StripAsciiWhitespace(cells[1]);
    absl::ConsumePrefix(&reason, "`");
    absl::ConsumeSuffix(&reason, "`");
    EXPECT_TRUE(rows.emplace(std::string(reason),
                             std::string(absl::StripAsciiWhitespace(cells[2])))
                    .second)
        << "README lists " << reason << " twice";
  }
  return rows;
}

TEST(ErrorsTest, ReadmeErrorTableMatchesTheCodeTable) {
  const std::map<std::string, std::string> readme = ReadmeErrorTable();
  ASSERT_FALSE(readme.empty()) << "no Errors table in README.md";
  std::set<std::string> names;
  for (Reason r : AllReasons()) {
    const std::string name(ReasonName(r));
    names.insert(name);
    auto row = readme.find(name);
    ASSERT_NE(row, readme.end()) << name << " is missing from README.md";
    EXPECT_EQ(row->second, absl::StatusCodeToString(CodeOf(r))) << name;
  }
  for (const auto& [reason, code] : readme) {
    EXPECT_TRUE(names.count(reason)) << "README.md documents " << reason << " ("
                                     << code << "), not a Reason";
  }
}

TEST(ErrorsTest, MakeErrorTakesTheCodeFromTheTable) {
  for (Reason r : AllReasons()) {
    EXPECT_EQ(MakeError(r, "m").code(), CodeOf(r)) << ReasonName(r);
  }
  EXPECT_EQ(CodeOf(Reason::kPspBadResponse), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeOf(Reason::kPspAuthFailed), absl::StatusCode::kInternal);
}

TEST(ErrorsTest, EveryReasonRoundTripsThroughMakeError) {
  for (Reason r : AllReasons()) {
    absl::Status s = MakeError(r, "m");
    EXPECT_THAT(ReasonOf(s), Optional(r)) << ReasonName(r);
    EXPECT_TRUE(HasReason(s, r));
  }
}

TEST(ErrorsTest, MakeErrorKeepsCodeMessageAndReason) {
  absl::Status s =
      MakeError(Reason::kOrderNotFound, "no order for trans_id t-1");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "no order for trans_id t-1");
  EXPECT_THAT(ReasonOf(s), Optional(Reason::kOrderNotFound));
  EXPECT_TRUE(HasReason(s, Reason::kOrderNotFound));
  EXPECT_FALSE(HasReason(s, Reason::kSessionNotFound));
  EXPECT_THAT(MetadataOf(s), IsEmpty());
  EXPECT_THAT(FieldViolationsOf(s), IsEmpty());
  EXPECT_EQ(RetryDelayOf(s), std::nullopt);
}

TEST(ErrorsTest, StatusesMadeElsewhereHaveNoReason) {
  EXPECT_EQ(ReasonOf(absl::InternalError("boom")), std::nullopt);
  EXPECT_EQ(ReasonOf(absl::OkStatus()), std::nullopt);
  EXPECT_FALSE(HasReason(absl::InternalError("boom"), Reason::kInternal));
  EXPECT_THAT(MetadataOf(absl::InternalError("boom")), IsEmpty());
  EXPECT_EQ(RetryDelayOf(absl::UnavailableError("x")), std::nullopt);
}

TEST(ErrorsTest, MetadataRoundTripsInOrder) {
  const Metadata metadata = {{"trans_id", "t-42"},
                             {"psp_code", "E001"},
                             {"empty", ""},
                             {"trans_id", "dup"}};
  absl::Status s = MakeError(Reason::kPspRejected, "rejected", metadata);
  EXPECT_EQ(MetadataOf(s), metadata);
}

TEST(ErrorsTest, TabsAndNewlinesInMetadataDoNotCorruptTheEncoding) {
  const Metadata metadata = {{"before", "1"},
                             {"multi\tkey", "line one\nline two\tcol\r\n"},
                             {"after", "2"}};
  absl::Status s = MakeError(Reason::kPspBadResponse, "bad", metadata);
  const Metadata got = MetadataOf(s);
  ASSERT_THAT(got, SizeIs(3));
  EXPECT_THAT(got[0], Pair("before", "1"));
  EXPECT_THAT(got[2], Pair("after", "2"));
  // The odd entry stays one entry and keeps its text.
  EXPECT_THAT(got[1].first, HasSubstr("multi"));
  EXPECT_THAT(got[1].first, HasSubstr("key"));
  EXPECT_THAT(got[1].second, HasSubstr("line one"));
  EXPECT_THAT(got[1].second, HasSubstr("line two"));
  EXPECT_THAT(got[1].second, HasSubstr("col"));
  EXPECT_THAT(got[1].first + got[1].second, Not(HasSubstr("\t")));
  EXPECT_THAT(got[1].first + got[1].second, Not(HasSubstr("\n")));
}

TEST(ErrorsTest, InvalidFieldsListsEveryViolation) {
  absl::Status s = InvalidFields({{"payment.amount", "must be positive"},
                                  {"goods[2].price", "must not be empty"}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ReasonOf(s), Optional(Reason::kInvalidField));
  EXPECT_THAT(s.message(), HasSubstr("payment.amount: must be positive"));
  EXPECT_THAT(s.message(), HasSubstr("goods[2].price: must not be empty"));
  EXPECT_THAT(FieldViolationsOf(s),
              ElementsAre(IsViolation("payment.amount", "must be positive"),
                          IsViolation("goods[2].price", "must not be empty")));
}

TEST(ErrorsTest, InvalidFieldsWithSeparatorsKeepsViolationCount) {
  absl::Status s =
      InvalidFields({{"a", "first\nsecond"}, {"b\tc", "x\ty"}, {"d", "ok"}});
  const std::vector<FieldViolation> got = FieldViolationsOf(s);
  ASSERT_THAT(got, SizeIs(3));
  EXPECT_EQ(got[0].field, "a");
  EXPECT_THAT(got[0].description, HasSubstr("second"));
  EXPECT_THAT(got[1].description, HasSubstr("y"));
  EXPECT_THAT(got[2], IsViolation("d", "ok"));
}

TEST(ErrorsTest, InvalidFieldsWithNoViolationsIsStillInvalidArgument) {
  absl::Status s = InvalidFields({});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(HasReason(s, Reason::kInvalidField));
  EXPECT_THAT(FieldViolationsOf(s), IsEmpty());
}

TEST(ErrorsTest, WithRetryDelayAddsDelayAndKeepsEverythingElse) {
  absl::Status s = WithRetryDelay(
      MakeError(Reason::kRequestInProgress, "in flight", {{"trans_id", "t-1"}}),
      absl::Milliseconds(1500));
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(s.message(), "in flight");
  EXPECT_THAT(RetryDelayOf(s), Optional(absl::Milliseconds(1500)));
  EXPECT_TRUE(HasReason(s, Reason::kRequestInProgress));
  EXPECT_THAT(MetadataOf(s), ElementsAre(Pair("trans_id", "t-1")));
}

TEST(ErrorsTest, WithRetryDelayReplacesEarlierDelay) {
  absl::Status s =
      WithRetryDelay(absl::UnavailableError("x"), absl::Seconds(1));
  s = WithRetryDelay(s, absl::Seconds(3));
  EXPECT_THAT(RetryDelayOf(s), Optional(absl::Seconds(3)));
  EXPECT_THAT(RetryDelayOf(WithRetryDelay(absl::UnavailableError("x"),
                                          absl::ZeroDuration())),
              Optional(absl::ZeroDuration()));
}

TEST(ErrorsTest, WithRetryDelayOnOkStaysOk) {
  absl::Status s = WithRetryDelay(absl::OkStatus(), absl::Seconds(1));
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(RetryDelayOf(s), std::nullopt);
}

TEST(ErrorsTest, PayloadsSurviveCopyAndMove) {
  absl::Status original = WithRetryDelay(
      MakeError(Reason::kPspUnavailable, "down", {{"attempt", "3"}}),
      absl::Milliseconds(250));
  absl::Status copy = original;
  absl::Status assigned;
  assigned = copy;
  absl::Status moved = std::move(copy);
  for (const absl::Status* s : {&original, &assigned, &moved}) {
    EXPECT_EQ(s->code(), absl::StatusCode::kUnavailable);
    EXPECT_TRUE(HasReason(*s, Reason::kPspUnavailable));
    EXPECT_THAT(MetadataOf(*s), ElementsAre(Pair("attempt", "3")));
    EXPECT_THAT(RetryDelayOf(*s), Optional(absl::Milliseconds(250)));
  }
  // Changing a copy leaves the original alone.
  assigned = WithRetryDelay(assigned, absl::Seconds(9));
  EXPECT_THAT(RetryDelayOf(original), Optional(absl::Milliseconds(250)));
  EXPECT_EQ(original, moved);
}

TEST(ErrorsTest, PayloadsSurviveStatusOr) {
  absl::StatusOr<int> v =
      MakeError(Reason::kSessionNotFound, "gone", {{"session_id", "s-1"}});
  absl::StatusOr<int> copy = v;
  EXPECT_TRUE(HasReason(copy.status(), Reason::kSessionNotFound));
  EXPECT_THAT(MetadataOf(copy.status()),
              ElementsAre(Pair("session_id", "s-1")));
}

}  // namespace
}  // namespace payorch
