// docs/architecture.md's idempotency table, row by row, for both mutating RPC
// families (typed tests), plus the queries. PayKKa is FakePaykkaClient, the
// store the real InMemoryIdempotencyStore on a FakeClock.

#include "service/payment_service.h"

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "absl/synchronization/notification.h"
#include "adapters/paykka/http_transport.h"
#include "cache/in_memory_idempotency_store.h"
#include "common/errors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/fingerprint.h"
#include "service/grpc_status.h"
#include "tests/service/fake_paykka_client.h"
#include "tests/service/test_requests.h"

namespace payorch::service {
namespace {

using ::payorch::testing::Capture;
using ::payorch::testing::FakePaykkaClient;
using ::payorch::testing::kClientKey;
using ::payorch::testing::kMerchantId;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using Op = FakePaykkaClient::Op;
using When = FakePaykkaClient::When;

absl::Status PspError(Reason reason) {
  return MakeError(reason, std::string(ReasonName(reason)),
                   {{"psp_ret_code", "999999"}});
}

struct CheckoutFamily {
  using Request = v1::CreateCheckoutRequest;
  using Response = v1::CreateCheckoutResponse;
  static constexpr Op kCreate = Op::kCreateSession;
  static constexpr Op kFind = Op::kQuerySession;
  static constexpr const char* kFamily = kCheckoutFamily;
  static constexpr const char* kFindLookup = "session:trans_id=";
  static Request Valid(absl::Time now) {
    return testing::ValidCheckout(now, "T-1");
  }
  static void MakeInvalid(Request& r) {
    r.set_currency("usd");
    r.set_return_url("");
  }
  static std::vector<std::string> InvalidFields() {
    return {"currency", "return_url"};
  }
  static void Call(PaymentService& s, const Request& r, absl::Time deadline,
                   OutcomeCallback<Response> done) {
    s.CreateCheckout(r, deadline, std::move(done));
  }
  static std::string Id(const Response& r) { return r.session_id(); }
};

struct ChargeFamily {
  using Request = v1::ChargeRecurringRequest;
  using Response = v1::ChargeRecurringResponse;
  static constexpr Op kCreate = Op::kInitiate;
  static constexpr Op kFind = Op::kQueryTransaction;
  static constexpr const char* kFamily = kChargeFamily;
  static constexpr const char* kFindLookup = "order:trans_id=";
  static Request Valid(absl::Time) { return testing::ValidCharge("T-1"); }
  static void MakeInvalid(Request& r) {
    r.set_currency("usd");
    r.mutable_payment()->clear_token();
  }
  static std::vector<std::string> InvalidFields() {
    return {"currency", "payment.token"};
  }
  static void Call(PaymentService& s, const Request& r, absl::Time deadline,
                   OutcomeCallback<Response> done) {
    s.ChargeRecurring(r, deadline, std::move(done));
  }
  static std::string Id(const Response& r) { return r.order().order_id(); }
};

class ServiceFixture {
 protected:
  ServiceFixture()
      : start_(clock_.Now()),
        store_(clock_),
        service_(std::make_unique<PaymentService>(
            &paykka_, &store_, testing::TestRegistry(), &clock_)) {}

  absl::Time Deadline() const { return clock_.Now() + absl::Seconds(10); }

  FakeClock clock_;
  // Requests are built relative to the start, so that a retry after the
  // clock moved has the same content.
  const absl::Time start_;
  FakePaykkaClient paykka_;
  cache::InMemoryIdempotencyStore store_;
  std::unique_ptr<PaymentService> service_;
};

template <typename Family>
class MutationTest : public ::testing::Test, public ServiceFixture {
 protected:
  using Request = typename Family::Request;
  using Response = typename Family::Response;

  // Runs a call that completes inline (nothing held).
  Outcome<Response> Run(const Request& r) {
    Capture<Response> c;
    Family::Call(*service_, r, Deadline(), c.Callback());
    EXPECT_TRUE(c.outcome.has_value()) << "call still pending";
    return c.outcome.has_value() ? std::move(*c.outcome) : Outcome<Response>{};
  }
  Request Valid() const { return Family::Valid(start_); }
  int creates() const { return paykka_.calls(Family::kCreate); }
  int finds() const { return paykka_.calls(Family::kFind); }
};

using Families = ::testing::Types<CheckoutFamily, ChargeFamily>;
TYPED_TEST_SUITE(MutationTest, Families);

TYPED_TEST(MutationTest, FirstRequestExecutesOnceAndIsStored) {
  auto out = this->Run(this->Valid());
  ASSERT_TRUE(out.result.ok()) << out.result.status();
  EXPECT_FALSE(TypeParam::Id(*out.result).empty());
  EXPECT_EQ(this->creates(), 1);
  EXPECT_EQ(this->paykka_.total_calls(), 1);  // no query on a fresh trans_id
  EXPECT_EQ(out.info.upstream_calls, 1);
  EXPECT_FALSE(out.info.replayed);
  EXPECT_EQ(this->store_.size(), 1u);
  EXPECT_EQ(this->store_.TimeToLive({TypeParam::kFamily, kMerchantId, "T-1"}),
            absl::Hours(48));
}

TYPED_TEST(MutationTest, ReplayOfSameContentIsByteIdenticalWithoutUpstream) {
  auto first = this->Run(this->Valid());
  ASSERT_TRUE(first.result.ok());
  this->clock_.Advance(absl::Hours(1));
  auto second = this->Run(this->Valid());
  ASSERT_TRUE(second.result.ok());
  EXPECT_TRUE(second.info.replayed);
  EXPECT_EQ(second.info.upstream_calls, 0);
  EXPECT_EQ(second.result->SerializeAsString(),
            first.result->SerializeAsString());
  EXPECT_EQ(this->paykka_.total_calls(), 1);
}

TYPED_TEST(MutationTest, SameTransIdDifferentContentIsTransIdReused) {
  ASSERT_TRUE(this->Run(this->Valid()).result.ok());
  auto other = this->Valid();
  other.set_amount(other.amount() + 1);
  auto out = this->Run(other);
  EXPECT_EQ(out.result.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(HasReason(out.result.status(), Reason::kTransIdReused));
  EXPECT_EQ(this->paykka_.total_calls(), 1);
}

TYPED_TEST(MutationTest, ConcurrentDuplicateWhileInFlightIsRequestInProgress) {
  this->paykka_.Hold(TypeParam::kCreate);
  Capture<typename TypeParam::Response> first;
  TypeParam::Call(*this->service_, this->Valid(), this->Deadline(),
                  first.Callback());
  ASSERT_FALSE(first.outcome.has_value());

  this->clock_.Advance(absl::Seconds(1));
  auto second = this->Run(this->Valid());
  const absl::Status& s = second.result.status();
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(HasReason(s, Reason::kRequestInProgress));
  ASSERT_TRUE(RetryDelayOf(s).has_value());
  // The lease has 29 s left; the advice is capped at 5 s.
  EXPECT_EQ(*RetryDelayOf(s), absl::Seconds(5));
  EXPECT_EQ(this->creates(), 1);
  EXPECT_EQ(second.info.upstream_calls, 0);

  this->paykka_.ReleaseHeld();
  ASSERT_TRUE(first.outcome.has_value());
  ASSERT_TRUE(first.outcome->result.ok());
  auto third = this->Run(this->Valid());
  ASSERT_TRUE(third.result.ok());
  EXPECT_TRUE(third.info.replayed);
  EXPECT_EQ(TypeParam::Id(*third.result),
            TypeParam::Id(*first.outcome->result));
  EXPECT_EQ(this->creates(), 1);
}

TYPED_TEST(MutationTest, InvalidRequestStoresNothingAndSendsNothing) {
  auto bad = this->Valid();
  TypeParam::MakeInvalid(bad);
  auto out = this->Run(bad);
  EXPECT_EQ(out.result.status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<std::string> fields;
  for (const auto& v : FieldViolationsOf(out.result.status())) {
    fields.push_back(v.field);
  }
  EXPECT_EQ(fields, TypeParam::InvalidFields());
  EXPECT_EQ(this->store_.size(), 0u);
  EXPECT_EQ(this->paykka_.total_calls(), 0);

  // The trans_id is still free.
  auto good = this->Run(this->Valid());
  ASSERT_TRUE(good.result.ok()) << good.result.status();
  EXPECT_EQ(this->creates(), 1);
}

TYPED_TEST(MutationTest, DefinitiveRejectionIsStoredAndReplayedByteIdentical) {
  this->paykka_.FailNext(
      TypeParam::kCreate,
      MakeError(Reason::kPspRejected, "PayKKa rejected the request",
                {{"psp_ret_code", "010000"}, {"psp_ret_msg", "bad param"}}));
  auto first = this->Run(this->Valid());
  EXPECT_EQ(first.result.status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(HasReason(first.result.status(), Reason::kPspRejected));
  ASSERT_TRUE(first.rpc_status.has_value());

  auto second = this->Run(this->Valid());
  EXPECT_TRUE(second.info.replayed);
  ASSERT_TRUE(second.rpc_status.has_value());
  EXPECT_EQ(*second.rpc_status, *first.rpc_status);
  EXPECT_TRUE(HasReason(second.result.status(), Reason::kPspRejected));
  grpc::Status a = GrpcStatusFromRpcStatusBytes(*first.rpc_status);
  grpc::Status b = GrpcStatusFromRpcStatusBytes(*second.rpc_status);
  EXPECT_EQ(a.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(a.error_message(), b.error_message());
  EXPECT_EQ(a.error_details(), b.error_details());
  // The create, then the lookup by trans_id (session and order) that found
  // nothing before the refusal was stored; nothing on the replay.
  EXPECT_EQ(this->paykka_.total_calls(), 3);
}

TYPED_TEST(MutationTest, UnknownOutcomeIsRecordedAndRetryAdoptsWhatExists) {
  // PayKKa processes the create, but the answer is lost (timeout).
  this->paykka_.FailNext(TypeParam::kCreate,
                         PspError(Reason::kPspOutcomeUnknown),
                         When::kAfterCommit);
  auto first = this->Run(this->Valid());
  EXPECT_EQ(first.result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(HasReason(first.result.status(), Reason::kPspOutcomeUnknown));
  EXPECT_TRUE(RetryDelayOf(first.result.status()).has_value());
  EXPECT_EQ(this->store_.size(), 1u);  // the record stays, as UNKNOWN

  auto retry = this->Run(this->Valid());
  ASSERT_TRUE(retry.result.ok()) << retry.result.status();
  EXPECT_EQ(this->creates(), 1);  // adopted, not created again
  EXPECT_EQ(this->finds(), 1);
  EXPECT_THAT(this->paykka_.lookups(),
              ElementsAre(std::string(TypeParam::kFindLookup) + "T-1"));

  // And the adopted answer is now what is replayed.
  auto replay = this->Run(this->Valid());
  EXPECT_TRUE(replay.info.replayed);
  EXPECT_EQ(replay.result->SerializeAsString(),
            retry.result->SerializeAsString());
  EXPECT_EQ(this->paykka_.total_calls(), 2);
}

TYPED_TEST(MutationTest, RetryAfterUnknownCreatesWhenPaykkaHasNothing) {
  this->paykka_.FailNext(TypeParam::kCreate,
                         PspError(Reason::kPspOutcomeUnknown),
                         When::kBeforeCommit);
  EXPECT_TRUE(HasReason(this->Run(this->Valid()).result.status(),
                        Reason::kPspOutcomeUnknown));
  // After the quiet period (attempt + paykka_timeout), "not found" counts.
  this->clock_.Advance(absl::Seconds(15));
  auto retry = this->Run(this->Valid());
  ASSERT_TRUE(retry.result.ok()) << retry.result.status();
  EXPECT_EQ(this->finds(), 1);
  EXPECT_EQ(this->creates(), 2);
  // The lookup (session and order: neither kind holds it), the create.
  EXPECT_EQ(retry.info.upstream_calls, 2);
}

TYPED_TEST(MutationTest, UnknownReasonFromCreateIsTreatedAsUnknownOutcome) {
  // Anything not known to be "not sent" might have reached PayKKa.
  this->paykka_.FailNext(TypeParam::kCreate, absl::InternalError("weird"));
  auto out = this->Run(this->Valid());
  EXPECT_TRUE(HasReason(out.result.status(), Reason::kPspOutcomeUnknown));
  this->Run(this->Valid());
  EXPECT_EQ(this->finds(), 1);  // the retry reconciled first
}

TYPED_TEST(MutationTest, NotSentFailureReleasesTheRecord) {
  this->paykka_.FailNext(TypeParam::kCreate, PspError(Reason::kPspUnavailable));
  auto first = this->Run(this->Valid());
  EXPECT_TRUE(HasReason(first.result.status(), Reason::kPspUnavailable));
  EXPECT_EQ(this->store_.size(), 0u);
  auto retry = this->Run(this->Valid());
  ASSERT_TRUE(retry.result.ok());
  EXPECT_EQ(this->finds(), 0);  // nothing to reconcile
  EXPECT_EQ(this->creates(), 2);
}

TYPED_TEST(MutationTest, RateLimitedAndAuthFailedAreNotStored) {
  this->paykka_.FailNext(TypeParam::kCreate, PspError(Reason::kPspRateLimited));
  this->paykka_.FailNext(TypeParam::kCreate, PspError(Reason::kPspAuthFailed));
  EXPECT_TRUE(HasReason(this->Run(this->Valid()).result.status(),
                        Reason::kPspRateLimited));
  EXPECT_TRUE(HasReason(this->Run(this->Valid()).result.status(),
                        Reason::kPspAuthFailed));
  EXPECT_EQ(this->store_.size(), 0u);
  EXPECT_TRUE(this->Run(this->Valid()).result.ok());
  EXPECT_EQ(this->finds(), 0);
}

TYPED_TEST(MutationTest, ExpiredLeaseOfCrashedHolderIsReconciledThenCreated) {
  // A holder claimed the trans_id and crashed before reaching PayKKa.
  auto request = this->Valid();
  this->store_.Begin({TypeParam::kFamily, kMerchantId, "T-1"},
                     Fingerprint(testing::FingerprintMerchant(), request),
                     absl::Seconds(30), [](absl::StatusOr<cache::Claim> c) {
                       ASSERT_TRUE(c.ok());
                       EXPECT_EQ(c->outcome, cache::Claim::Outcome::kAcquired);
                     });
  auto during = this->Run(request);
  EXPECT_TRUE(HasReason(during.result.status(), Reason::kRequestInProgress));

  this->clock_.Advance(absl::Seconds(31));
  auto after = this->Run(request);
  ASSERT_TRUE(after.result.ok()) << after.result.status();
  EXPECT_EQ(this->finds(), 1);
  EXPECT_EQ(this->creates(), 1);
}

TYPED_TEST(MutationTest,
           ExpiredLeaseOfSlowHolderAdoptsAndOldHolderStillAnswers) {
  this->paykka_.Hold(TypeParam::kCreate);
  Capture<typename TypeParam::Response> slow;
  TypeParam::Call(*this->service_, this->Valid(), this->Deadline(),
                  slow.Callback());
  ASSERT_FALSE(slow.outcome.has_value());

  this->clock_.Advance(absl::Seconds(31));
  auto successor = this->Run(this->Valid());
  ASSERT_TRUE(successor.result.ok()) << successor.result.status();
  EXPECT_EQ(this->creates(), 1);  // the successor adopted the slow one's
  EXPECT_EQ(this->finds(), 1);

  this->paykka_.ReleaseHeld();
  ASSERT_TRUE(slow.outcome.has_value());
  ASSERT_TRUE(slow.outcome->result.ok());
  EXPECT_EQ(TypeParam::Id(*slow.outcome->result),
            TypeParam::Id(*successor.result));
  // Its Complete() lost the lease: logged, not overwriting the successor.
  EXPECT_THAT(slow.outcome->info.store_error, ::testing::HasSubstr("complete"));
  auto replay = this->Run(this->Valid());
  EXPECT_TRUE(replay.info.replayed);
  EXPECT_EQ(replay.result->SerializeAsString(),
            successor.result->SerializeAsString());
}

TYPED_TEST(MutationTest, ReconcileQueryFailureKeepsOutcomeUnknown) {
  this->paykka_.FailNext(TypeParam::kCreate,
                         PspError(Reason::kPspOutcomeUnknown));
  this->Run(this->Valid());
  this->paykka_.FailNext(TypeParam::kFind, PspError(Reason::kPspUnavailable));
  auto retry = this->Run(this->Valid());
  EXPECT_EQ(retry.result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(HasReason(retry.result.status(), Reason::kPspOutcomeUnknown));
  EXPECT_TRUE(RetryDelayOf(retry.result.status()).has_value());
  EXPECT_EQ(this->creates(), 1);            // never created blind
  this->clock_.Advance(absl::Seconds(15));  // past the quiet period
  auto again = this->Run(this->Valid());
  ASSERT_TRUE(again.result.ok());
  EXPECT_EQ(this->finds(), 2);
}

TYPED_TEST(MutationTest, DuplicateTransIdFromPaykkaIsAdopted) {
  // PayKKa already has the trans_id (e.g. our record was lost): its
  // "duplicate trans_id" rejection leads to a query and adoption.
  ASSERT_TRUE(this->Run(this->Valid()).result.ok());
  cache::InMemoryIdempotencyStore fresh_store(this->clock_);
  PaymentService fresh(&this->paykka_, &fresh_store, testing::TestRegistry(),
                       &this->clock_);
  Capture<typename TypeParam::Response> c;
  TypeParam::Call(fresh, this->Valid(), this->Deadline(), c.Callback());
  ASSERT_TRUE(c.outcome.has_value());
  ASSERT_TRUE(c.outcome->result.ok()) << c.outcome->result.status();
  EXPECT_EQ(this->creates(), 2);  // the second was refused by PayKKa
  EXPECT_EQ(this->finds(), 1);
  EXPECT_EQ(c.outcome->info.upstream_calls, 2);
}

// Finding 2: PayKKa's refusal of a trans_id it already holds is recognised
// by looking, not by its wording. Payorch lost the record (Redis flushed,
// failover without persistence); the retry adopts the existing object.
TYPED_TEST(MutationTest, RefusalIsFollowedByALookupWhateverItsWording) {
  const std::pair<const char*, const char*> wordings[] = {
      {"2015", "Order already exists"},
      {"010000", "parameter error: trans_id"},
      {"999001",
       "\xe8\xae\xa2\xe5\x8d\x95\xe5\xb7\xb2\xe5\xad\x98\xe5\x9c\xa8"},
  };
  auto first = this->Run(this->Valid());
  ASSERT_TRUE(first.result.ok());
  for (const auto& [code, msg] : wordings) {
    this->paykka_.SetDuplicateRefusal(code, msg);
    cache::InMemoryIdempotencyStore lost(this->clock_);
    PaymentService fresh(&this->paykka_, &lost, testing::TestRegistry(),
                         &this->clock_);
    Capture<typename TypeParam::Response> c;
    TypeParam::Call(fresh, this->Valid(), this->Deadline(), c.Callback());
    ASSERT_TRUE(c.outcome.has_value());
    ASSERT_TRUE(c.outcome->result.ok())
        << msg << ": " << c.outcome->result.status();
    EXPECT_EQ(TypeParam::Id(*c.outcome->result), TypeParam::Id(*first.result));
  }
  EXPECT_EQ(this->creates(), 4);  // the first, then three refusals
}

// Finding 2: a refusal with nothing under the trans_id at PayKKa is stored.
TYPED_TEST(MutationTest, RefusalWithNothingAtPaykkaIsStored) {
  this->paykka_.FailNext(TypeParam::kCreate, PspError(Reason::kPspRejected));
  auto first = this->Run(this->Valid());
  EXPECT_TRUE(HasReason(first.result.status(), Reason::kPspRejected));
  EXPECT_TRUE(first.rpc_status.has_value());
  EXPECT_EQ(this->finds(), 1);  // looked before storing
  auto replay = this->Run(this->Valid());
  EXPECT_TRUE(replay.info.replayed);
  EXPECT_EQ(this->creates(), 1);
}

// The duplicate fast path: payorch lost its record and PayKKa refuses the
// repeat with a listed duplicate code while its object is not visible to
// queries yet. Not stored as a refusal: UNKNOWN until the quiet period is
// over, then the retry adopts. An unlisted code, with nothing found, is
// stored (the safety net cannot tell it from any other refusal).
TYPED_TEST(MutationTest, ListedDuplicateCodeIsNotStoredWhileNothingVisible) {
  auto first = this->Run(this->Valid());
  ASSERT_TRUE(first.result.ok());
  this->paykka_.HideFromQueries("T-1");
  this->paykka_.SetDuplicateRefusal("206099", "trans_id already used",
                                    /*listed=*/true);
  cache::InMemoryIdempotencyStore lost(this->clock_);
  PaymentService fresh(&this->paykka_, &lost, testing::TestRegistry(),
                       &this->clock_);
  Capture<typename TypeParam::Response> refused;
  TypeParam::Call(fresh, this->Valid(), this->Deadline(), refused.Callback());
  ASSERT_TRUE(refused.outcome.has_value());
  const absl::Status& st = refused.outcome->result.status();
  EXPECT_TRUE(HasReason(st, Reason::kPspOutcomeUnknown)) << st;
  EXPECT_FALSE(refused.outcome->rpc_status.has_value());  // nothing stored
  EXPECT_EQ(RetryDelayOf(st), absl::Seconds(15));
  this->paykka_.Reveal("T-1");
  this->clock_.Advance(absl::Seconds(16));
  Capture<typename TypeParam::Response> retry;
  TypeParam::Call(fresh, this->Valid(), this->Deadline(), retry.Callback());
  ASSERT_TRUE(retry.outcome->result.ok()) << retry.outcome->result.status();
  EXPECT_EQ(TypeParam::Id(*retry.outcome->result),
            TypeParam::Id(*first.result));
  EXPECT_EQ(this->creates(), 2);  // the first and the refused repeat

  // The same with the code not listed: the refusal is stored.
  this->paykka_.HideFromQueries("T-1");
  this->paykka_.SetDuplicateRefusal("206099", "trans_id already used");
  cache::InMemoryIdempotencyStore lost_again(this->clock_);
  PaymentService unlisted(&this->paykka_, &lost_again, testing::TestRegistry(),
                          &this->clock_);
  Capture<typename TypeParam::Response> stored;
  TypeParam::Call(unlisted, this->Valid(), this->Deadline(), stored.Callback());
  EXPECT_TRUE(HasReason(stored.outcome->result.status(), Reason::kPspRejected));
  EXPECT_TRUE(stored.outcome->rpc_status.has_value());
}

// The fast path ends: when PayKKa's object stays invisible after the quiet
// period, the retry's own lookup, create and lookup again settle it as a
// stored refusal instead of answering UNKNOWN for ever.
TYPED_TEST(MutationTest, ListedDuplicateCodeIsStoredAfterTheQuietPeriod) {
  ASSERT_TRUE(this->Run(this->Valid()).result.ok());
  this->paykka_.HideFromQueries("T-1");
  this->paykka_.SetDuplicateRefusal("206099", "trans_id already used",
                                    /*listed=*/true);
  cache::InMemoryIdempotencyStore lost(this->clock_);
  PaymentService fresh(&this->paykka_, &lost, testing::TestRegistry(),
                       &this->clock_);
  Capture<typename TypeParam::Response> first, second;
  TypeParam::Call(fresh, this->Valid(), this->Deadline(), first.Callback());
  EXPECT_TRUE(
      HasReason(first.outcome->result.status(), Reason::kPspOutcomeUnknown));
  this->clock_.Advance(absl::Seconds(16));
  TypeParam::Call(fresh, this->Valid(), this->Deadline(), second.Callback());
  EXPECT_TRUE(HasReason(second.outcome->result.status(), Reason::kPspRejected));
  EXPECT_TRUE(second.outcome->rpc_status.has_value());
  EXPECT_EQ(this->creates(), 3);
}

// Finding 3: after the record expired (retention), the retry still ends on
// PayKKa's object, not on a stored rejection.
TYPED_TEST(MutationTest, ExpiredRecordEndsOnPaykkasObject) {
  this->paykka_.SetDuplicateRefusal("4001", "Transaction exists");
  cache::InMemoryIdempotencyStore store(this->clock_, {absl::Minutes(30)});
  PaymentServiceOptions options;
  options.retention = absl::Minutes(30);
  PaymentService service(&this->paykka_, &store, testing::TestRegistry(),
                         &this->clock_, options);
  Capture<typename TypeParam::Response> first, late;
  TypeParam::Call(service, this->Valid(), this->Deadline(), first.Callback());
  ASSERT_TRUE(first.outcome->result.ok());
  this->clock_.Advance(absl::Minutes(31));
  EXPECT_EQ(store.size(), 0u);
  TypeParam::Call(service, this->Valid(), this->Deadline(), late.Callback());
  ASSERT_TRUE(late.outcome->result.ok()) << late.outcome->result.status();
  EXPECT_EQ(TypeParam::Id(*late.outcome->result),
            TypeParam::Id(*first.outcome->result));
  EXPECT_FALSE(late.outcome->rpc_status.has_value());
}

// Finding 4: over an UNKNOWN record, "not found" then a create that was
// certainly not processed must leave the marker: the next retry asks PayKKa
// again before creating.
TYPED_TEST(MutationTest, NotProcessedCreateOverUnknownKeepsTheMarker) {
  this->paykka_.FailNext(TypeParam::kCreate,
                         PspError(Reason::kPspOutcomeUnknown));
  EXPECT_TRUE(HasReason(this->Run(this->Valid()).result.status(),
                        Reason::kPspOutcomeUnknown));
  this->clock_.Advance(absl::Seconds(16));  // past the quiet period
  for (Reason not_processed : {Reason::kPspUnavailable, Reason::kPspRateLimited,
                               Reason::kDeadlineExceeded}) {
    this->paykka_.FailNext(TypeParam::kCreate, PspError(not_processed));
    auto retry = this->Run(this->Valid());
    EXPECT_TRUE(HasReason(retry.result.status(), not_processed));
    EXPECT_EQ(this->store_.size(), 1u);  // still UNKNOWN, not released
  }
  const int finds_before = this->finds();
  auto last = this->Run(this->Valid());
  ASSERT_TRUE(last.result.ok()) << last.result.status();
  EXPECT_EQ(this->finds(), finds_before + 1);  // asked PayKKa first
}

// Finding 8: right after an unknown outcome PayKKa may still be processing
// the first create and answer "not found". No new create before the attempt
// time + paykka_timeout; the retry is told when to come back.
TYPED_TEST(MutationTest, NoCreateDuringTheQuietPeriodAfterUnknown) {
  // PayKKa takes the create but it is not visible to queries yet.
  this->paykka_.HideFromQueries("T-1");
  this->paykka_.FailNext(TypeParam::kCreate,
                         PspError(Reason::kPspOutcomeUnknown),
                         When::kAfterCommit);
  auto first = this->Run(this->Valid());
  ASSERT_TRUE(HasReason(first.result.status(), Reason::kPspOutcomeUnknown));
  EXPECT_EQ(RetryDelayOf(first.result.status()), absl::Seconds(15));
  this->clock_.Advance(absl::Seconds(2));
  auto early = this->Run(this->Valid());
  EXPECT_EQ(early.result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(HasReason(early.result.status(), Reason::kPspOutcomeUnknown));
  EXPECT_EQ(RetryDelayOf(early.result.status()), absl::Seconds(13));
  EXPECT_EQ(this->creates(), 1);
  // Visible now: adopted, still one create.
  this->paykka_.Reveal("T-1");
  auto later = this->Run(this->Valid());
  ASSERT_TRUE(later.result.ok()) << later.result.status();
  EXPECT_EQ(this->creates(), 1);
}

// Finding 10: a failure before anything was sent (e.g. signing) is not an
// unknown outcome.
TYPED_TEST(MutationTest, FailureBeforeSendingIsNotUnknown) {
  this->paykka_.FailNext(
      TypeParam::kCreate,
      paykka::TransportError(absl::StatusCode::kInternal,
                             paykka::SendState::kNotSent, "signing failed"));
  auto out = this->Run(this->Valid());
  EXPECT_FALSE(HasReason(out.result.status(), Reason::kPspOutcomeUnknown));
  EXPECT_EQ(this->store_.size(), 0u);
  ASSERT_TRUE(this->Run(this->Valid()).result.ok());
  EXPECT_EQ(this->finds(), 0);
}

// Finding 10: Begin's reply is lost (timeout) after Redis applied it. The
// owner token is payorch's, so Begin is sent again and finds its own claim
// instead of an orphaned lease answering REQUEST_IN_PROGRESS for 30 s.
class LosesFirstBeginReply : public cache::IdempotencyStore {
 public:
  explicit LosesFirstBeginReply(cache::IdempotencyStore& inner)
      : inner_(inner) {}
  using IdempotencyStore::Begin;
  using IdempotencyStore::MarkUnknown;
  void Begin(
      const cache::IdempotencyKey& key, const cache::BeginArgs& args,
      absl::AnyInvocable<void(absl::StatusOr<cache::Claim>) &&> done) override {
    if (lost_++ > 0) return inner_.Begin(key, args, std::move(done));
    inner_.Begin(
        key, args,
        [done = std::move(done)](absl::StatusOr<cache::Claim>) mutable {
          std::move(done)(MakeError(Reason::kIdempotencyStoreUnavailable,
                                    "redis: command timed out"));
        });
  }
  void Complete(const cache::IdempotencyKey& key, const std::string& owner,
                const std::string& outcome, absl::Duration retention,
                absl::AnyInvocable<void(absl::Status) &&> done) override {
    inner_.Complete(key, owner, outcome, retention, std::move(done));
  }
  void MarkUnknown(const cache::IdempotencyKey& key, const std::string& owner,
                   absl::Duration quiet,
                   absl::AnyInvocable<void(absl::Status) &&> done) override {
    inner_.MarkUnknown(key, owner, quiet, std::move(done));
  }
  void Release(const cache::IdempotencyKey& key, const std::string& owner,
               absl::AnyInvocable<void(absl::Status) &&> done) override {
    inner_.Release(key, owner, std::move(done));
  }
  void Forget(const cache::IdempotencyKey& key, const std::string& owner,
              absl::AnyInvocable<void(absl::Status) &&> done) override {
    inner_.Forget(key, owner, std::move(done));
  }
  bool Healthy() const override { return true; }

 private:
  cache::IdempotencyStore& inner_;
  std::atomic<int> lost_{0};
};

TYPED_TEST(MutationTest, BeginWhoseReplyWasLostIsSentAgain) {
  auto timers = EventLoop::Start("test-timers");
  ASSERT_TRUE(timers.ok());
  LosesFirstBeginReply lossy(this->store_);
  PaymentServiceOptions options;
  options.timers = timers->get();
  options.begin_retry_delay = absl::Milliseconds(10);
  PaymentService service(&this->paykka_, &lossy, testing::TestRegistry(),
                         &this->clock_, options);
  absl::Notification done;
  std::optional<Outcome<typename TypeParam::Response>> out;
  TypeParam::Call(service, this->Valid(), this->Deadline(),
                  [&](Outcome<typename TypeParam::Response> o) {
                    out = std::move(o);
                    done.Notify();
                  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(out->result.ok()) << out->result.status();
  EXPECT_EQ(this->creates(), 1);
  auto replay = this->Run(this->Valid());
  EXPECT_TRUE(replay.info.replayed);
}

TYPED_TEST(MutationTest, StoreUnavailableFailsClosed) {
  testing::UnavailableIdempotencyStore down;
  PaymentService service(&this->paykka_, &down, testing::TestRegistry(),
                         &this->clock_);
  Capture<typename TypeParam::Response> c;
  TypeParam::Call(service, this->Valid(), this->Deadline(), c.Callback());
  ASSERT_TRUE(c.outcome.has_value());
  const absl::Status& s = c.outcome->result.status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(HasReason(s, Reason::kIdempotencyStoreUnavailable));
  EXPECT_TRUE(RetryDelayOf(s).has_value());
  EXPECT_EQ(this->paykka_.total_calls(), 0);
}

TYPED_TEST(MutationTest, UnconfiguredMerchantIsRefusedBeforeAnything) {
  auto r = this->Valid();
  r.set_merchant_id("OTHER");
  auto out = this->Run(r);
  EXPECT_EQ(out.result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(HasReason(out.result.status(), Reason::kMerchantNotConfigured));
  EXPECT_EQ(this->store_.size(), 0u);
  EXPECT_EQ(this->paykka_.total_calls(), 0);
}

TYPED_TEST(MutationTest, UpstreamSeesCallerDeadlineCappedByLease) {
  absl::Time deadline = this->clock_.Now() + absl::Seconds(7);
  Capture<typename TypeParam::Response> c;
  TypeParam::Call(*this->service_, this->Valid(), deadline, c.Callback());
  EXPECT_EQ(this->paykka_.last_deadline(TypeParam::kCreate), deadline);

  // A caller deadline beyond the lease is cut to lease - margin (28 s), when
  // paykka_timeout allows that much.
  PaymentServiceOptions options;
  options.paykka_timeout = absl::Minutes(1);
  PaymentService service(&this->paykka_, &this->store_, testing::TestRegistry(),
                         &this->clock_, options);
  Capture<typename TypeParam::Response> d;
  auto other = this->Valid();
  other.set_trans_id("T-2");
  TypeParam::Call(service, other, this->clock_.Now() + absl::Minutes(5),
                  d.Callback());
  EXPECT_EQ(this->paykka_.last_deadline(TypeParam::kCreate),
            this->clock_.Now() + absl::Seconds(28));
}

TYPED_TEST(MutationTest, UpstreamDeadlineIsCappedByPaykkaTimeout) {
  // Default paykka_timeout (15 s) is shorter than lease - margin (28 s).
  Capture<typename TypeParam::Response> c;
  TypeParam::Call(*this->service_, this->Valid(),
                  this->clock_.Now() + absl::Minutes(5), c.Callback());
  EXPECT_EQ(this->paykka_.last_deadline(TypeParam::kCreate),
            this->clock_.Now() + absl::Seconds(15));
}

TYPED_TEST(MutationTest, ShortLeaseKeepsAQuarterAsMargin) {
  PaymentServiceOptions options;
  options.lease = absl::Seconds(4);
  PaymentService service(&this->paykka_, &this->store_, testing::TestRegistry(),
                         &this->clock_, options);
  Capture<typename TypeParam::Response> c;
  TypeParam::Call(service, this->Valid(), this->clock_.Now() + absl::Minutes(5),
                  c.Callback());
  EXPECT_EQ(this->paykka_.last_deadline(TypeParam::kCreate),
            this->clock_.Now() + absl::Seconds(3));
}

// --- Family-specific behaviour ---

class CheckoutTest : public ::testing::Test, public ServiceFixture {};

TEST_F(CheckoutTest, AdoptedSessionCarriesTheMerchantsClientKey) {
  paykka_.FailNext(Op::kCreateSession, PspError(Reason::kPspOutcomeUnknown),
                   When::kAfterCommit);
  Capture<v1::CreateCheckoutResponse> first, retry;
  service_->CreateCheckout(testing::ValidCheckout(clock_.Now()), Deadline(),
                           first.Callback());
  service_->CreateCheckout(testing::ValidCheckout(clock_.Now()), Deadline(),
                           retry.Callback());
  ASSERT_TRUE(retry.outcome->result.ok());
  EXPECT_EQ(retry.outcome->result->client_key(), kClientKey);
  EXPECT_EQ(retry.outcome->result->trans_id(), "T-1");
  EXPECT_EQ(retry.outcome->result->merchant_id(), kMerchantId);
  EXPECT_FALSE(retry.outcome->result->session_url().empty());
}

TEST_F(CheckoutTest, ReconciledSessionWithOtherAmountIsTransIdReused) {
  v1::GetSessionStatusResponse existing;
  existing.set_trans_id("T-1");
  existing.set_session_id("CS-OLD");
  existing.set_amount(1);
  existing.set_currency("USD");
  paykka_.PutSession(existing);
  // Claimed by a holder that crashed: the next attempt reconciles.
  auto request = testing::ValidCheckout(clock_.Now());
  store_.Begin({kCheckoutFamily, kMerchantId, "T-1"},
               Fingerprint(testing::FingerprintMerchant(), request),
               absl::Seconds(30), [](absl::StatusOr<cache::Claim>) {});
  clock_.Advance(absl::Seconds(31));
  Capture<v1::CreateCheckoutResponse> c;
  service_->CreateCheckout(request, Deadline(), c.Callback());
  EXPECT_TRUE(HasReason(c.outcome->result.status(), Reason::kTransIdReused));
  EXPECT_EQ(paykka_.calls(Op::kCreateSession), 0);
}

TEST_F(CheckoutTest, ReplayAfterExpireTimePassedIsStillReplayed) {
  auto request = testing::ValidCheckout(start_);  // expires start + 1 h
  Capture<v1::CreateCheckoutResponse> first, later;
  service_->CreateCheckout(request, Deadline(), first.Callback());
  ASSERT_TRUE(first.outcome->result.ok());
  clock_.Advance(absl::Hours(2));
  service_->CreateCheckout(request, Deadline(), later.Callback());
  ASSERT_TRUE(later.outcome->result.ok()) << later.outcome->result.status();
  EXPECT_TRUE(later.outcome->info.replayed);
  EXPECT_EQ(later.outcome->result->session_id(),
            first.outcome->result->session_id());
}

TEST_F(CheckoutTest, NewRequestWithPastExpireTimeIsInvalidAndNotStored) {
  auto request = testing::ValidCheckout(start_);
  clock_.Advance(absl::Hours(2));
  Capture<v1::CreateCheckoutResponse> c;
  service_->CreateCheckout(request, Deadline(), c.Callback());
  EXPECT_EQ(c.outcome->result.status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(FieldViolationsOf(c.outcome->result.status()).size(), 1u);
  EXPECT_EQ(FieldViolationsOf(c.outcome->result.status())[0].field,
            "expire_time");
  EXPECT_EQ(store_.size(), 0u);
  EXPECT_EQ(paykka_.total_calls(), 0);

  // With other violations too, all are listed in one answer.
  request.set_amount(0);
  Capture<v1::CreateCheckoutResponse> d;
  service_->CreateCheckout(request, Deadline(), d.Callback());
  std::vector<std::string> fields;
  for (const auto& v : FieldViolationsOf(d.outcome->result.status())) {
    fields.push_back(v.field);
  }
  EXPECT_THAT(fields, ElementsAre("amount", "expire_time"));
}

// Finding 10: retention must outlive a claim plus the quiet period.
TEST(PaymentServiceOptionsTest, RetentionMustExceedLeasePlusPaykkaTimeout) {
  PaymentServiceOptions options;
  EXPECT_TRUE(CheckPaymentServiceOptions(options).ok());
  options.retention = absl::Seconds(45);  // = 30 s lease + 15 s timeout
  absl::Status s = CheckPaymentServiceOptions(options);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              ::testing::HasSubstr("--idempotency_retention"));
  options.retention = absl::Seconds(46);
  EXPECT_TRUE(CheckPaymentServiceOptions(options).ok());
}

TEST(MerchantRegistryTest, BuiltFromLoadedConfigs) {
  std::vector<paykka::MerchantConfig> configs;
  configs.push_back(*testing::TestMerchant());
  MerchantRegistry registry = MakeMerchantRegistry(std::move(configs));
  ASSERT_EQ(registry.size(), 1u);
  EXPECT_EQ(registry.at(kMerchantId)->client_key, kClientKey);
}

class ChargeTest : public ::testing::Test, public ServiceFixture {};

TEST_F(ChargeTest, DeclineIsAnOkResponseAndIsReplayed) {
  paykka_.DeclineNext("2021", "insufficient funds");
  Capture<v1::ChargeRecurringResponse> first, second;
  service_->ChargeRecurring(testing::ValidCharge(), Deadline(),
                            first.Callback());
  ASSERT_TRUE(first.outcome->result.ok());
  EXPECT_EQ(first.outcome->result->order().status(), v1::ORDER_STATUS_FAILURE);
  EXPECT_EQ(first.outcome->result->order().error_code(), "2021");
  service_->ChargeRecurring(testing::ValidCharge(), Deadline(),
                            second.Callback());
  ASSERT_TRUE(second.outcome->result.ok());
  EXPECT_TRUE(second.outcome->info.replayed);
  EXPECT_EQ(second.outcome->result->SerializeAsString(),
            first.outcome->result->SerializeAsString());
  EXPECT_EQ(paykka_.calls(Op::kInitiate), 1);
}

// Finding 6: a trans_id names one payment. While payorch holds the other
// family's record, the second RPC is TRANS_ID_REUSED with no upstream call.
TEST_F(ChargeTest, TransIdOfTheOtherFamilyIsReusedWithoutUpstream) {
  Capture<v1::CreateCheckoutResponse> a;
  Capture<v1::ChargeRecurringResponse> b;
  service_->CreateCheckout(testing::ValidCheckout(clock_.Now(), "X-1"),
                           Deadline(), a.Callback());
  ASSERT_TRUE(a.outcome->result.ok());
  service_->ChargeRecurring(testing::ValidCharge("X-1"), Deadline(),
                            b.Callback());
  EXPECT_EQ(b.outcome->result.status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(HasReason(b.outcome->result.status(), Reason::kTransIdReused));
  EXPECT_EQ(paykka_.total_calls(), 1);
  EXPECT_EQ(store_.size(), 1u);
}

// Finding 6: payorch lost its record; PayKKa holds a paid checkout's order
// under the trans_id with the same amount and currency. A ChargeRecurring
// must not adopt it (no money would be collected).
TEST_F(ChargeTest, CheckoutOrderIsNotAdoptedAsACharge) {
  v1::ChargeRecurringRequest charge = testing::ValidCharge("X-2");
  v1::Order paid;
  paid.set_merchant_id(kMerchantId);
  paid.set_trans_id("X-2");
  paid.set_order_id("GW-checkout");
  paid.set_session_id("CS-paid");
  paid.set_amount(charge.amount());
  paid.set_currency(charge.currency());
  paid.set_status(v1::ORDER_STATUS_SUCCESS);
  paykka_.PutOrder(paid);
  Capture<v1::ChargeRecurringResponse> c;
  service_->ChargeRecurring(charge, Deadline(), c.Callback());
  EXPECT_TRUE(HasReason(c.outcome->result.status(), Reason::kTransIdReused))
      << c.outcome->result.status();
  // Stored: a retry does not send another Initiate Transaction.
  Capture<v1::ChargeRecurringResponse> again;
  service_->ChargeRecurring(charge, Deadline(), again.Callback());
  EXPECT_TRUE(
      HasReason(again.outcome->result.status(), Reason::kTransIdReused));
  EXPECT_EQ(paykka_.calls(Op::kInitiate), 1);
}

// Finding 6: an unpaid checkout session holds the trans_id: every
// ChargeRecurring retry used to send another Initiate Transaction.
TEST_F(ChargeTest, UnpaidCheckoutSessionMakesAChargeReusedOnce) {
  v1::GetSessionStatusResponse session;
  session.set_session_id("CS-unpaid");
  session.set_trans_id("X-3");
  session.set_amount(999);
  session.set_currency("EUR");
  paykka_.PutSession(session);
  for (int i = 0; i < 3; ++i) {
    Capture<v1::ChargeRecurringResponse> c;
    service_->ChargeRecurring(testing::ValidCharge("X-3"), Deadline(),
                              c.Callback());
    EXPECT_TRUE(HasReason(c.outcome->result.status(), Reason::kTransIdReused))
        << c.outcome->result.status();
  }
  EXPECT_EQ(paykka_.calls(Op::kInitiate), 1);
}

// Finding 7: an empty checkout payment_method is not sent (the shopper
// chooses); an explicit BANKCARD is. Two different PayKKa requests.
TEST_F(CheckoutTest, EmptyPaymentMethodIsNotTheSameRequestAsBankcard) {
  v1::CreateCheckoutRequest a = testing::ValidCheckout(clock_.Now(), "F-7");
  a.mutable_payment()->clear_payment_method();
  v1::CreateCheckoutRequest b = a;
  b.mutable_payment()->set_payment_method("BANKCARD");
  Capture<v1::CreateCheckoutResponse> first, second;
  service_->CreateCheckout(a, Deadline(), first.Callback());
  ASSERT_TRUE(first.outcome->result.ok());
  service_->CreateCheckout(b, Deadline(), second.Callback());
  EXPECT_FALSE(second.outcome->info.replayed);
  EXPECT_TRUE(
      HasReason(second.outcome->result.status(), Reason::kTransIdReused));
}

// --- Queries ---

class QueryTest : public ::testing::Test, public ServiceFixture {
 protected:
  Outcome<v1::GetOrderResponse> GetOrder(const v1::GetOrderRequest& r,
                                         PaymentService* s = nullptr) {
    Capture<v1::GetOrderResponse> c;
    (s ? s : service_.get())->GetOrder(r, Deadline(), c.Callback());
    return std::move(*c.outcome);
  }
  Outcome<v1::GetSessionStatusResponse> GetSession(
      const v1::GetSessionStatusRequest& r, PaymentService* s = nullptr) {
    Capture<v1::GetSessionStatusResponse> c;
    (s ? s : service_.get())->GetSessionStatus(r, Deadline(), c.Callback());
    return std::move(*c.outcome);
  }
  static v1::GetOrderRequest OrderBySession(std::string id) {
    v1::GetOrderRequest r;
    r.set_merchant_id(kMerchantId);
    r.set_session_id(std::move(id));
    return r;
  }
};

TEST_F(QueryTest, GetOrderFindsTheOrder) {
  Capture<v1::ChargeRecurringResponse> charge;
  service_->ChargeRecurring(testing::ValidCharge("C-9"), Deadline(),
                            charge.Callback());
  v1::GetOrderRequest r;
  r.set_merchant_id(kMerchantId);
  r.set_trans_id("C-9");
  auto out = GetOrder(r);
  ASSERT_TRUE(out.result.ok());
  EXPECT_EQ(out.result->order().order_id(),
            charge.outcome->result->order().order_id());
  EXPECT_EQ(out.info.upstream_calls, 1);
  EXPECT_EQ(store_.size(), 1u);  // only the charge's record
}

TEST_F(QueryTest, UnpaidSessionHasNoOrder) {
  v1::GetSessionStatusResponse s;
  s.set_trans_id("T-5");
  s.set_session_id("CS5");
  s.set_status(v1::SESSION_STATUS_PROCESSING);
  paykka_.PutSession(s);
  auto out = GetOrder(OrderBySession("CS5"));
  EXPECT_EQ(out.result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(HasReason(out.result.status(), Reason::kOrderNotFound));
  EXPECT_EQ(out.info.upstream_calls, 2);
}

TEST_F(QueryTest, ExpiredUnpaidSessionIsSessionExpired) {
  v1::GetSessionStatusResponse s;
  s.set_trans_id("T-6");
  s.set_session_id("CS6");
  s.set_status(v1::SESSION_STATUS_EXPIRED);
  paykka_.PutSession(s);
  auto out = GetOrder(OrderBySession("CS6"));
  EXPECT_EQ(out.result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(HasReason(out.result.status(), Reason::kSessionExpired));
  EXPECT_THAT(paykka_.lookups(),
              ElementsAre("order:session_id=CS6", "session:session_id=CS6"));

  // GetSessionStatus answers EXPIRED as a normal state.
  v1::GetSessionStatusRequest q;
  q.set_merchant_id(kMerchantId);
  q.set_session_id("CS6");
  auto session = GetSession(q);
  ASSERT_TRUE(session.result.ok());
  EXPECT_EQ(session.result->status(), v1::SESSION_STATUS_EXPIRED);
}

TEST_F(QueryTest, UnknownSessionIsSessionNotFound) {
  auto out = GetOrder(OrderBySession("CS404"));
  EXPECT_EQ(out.result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(HasReason(out.result.status(), Reason::kSessionNotFound));
}

TEST_F(QueryTest, OrderByOrderIdNotFoundDoesNotQuerySession) {
  v1::GetOrderRequest r;
  r.set_merchant_id(kMerchantId);
  r.set_order_id("GW404");
  auto out = GetOrder(r);
  EXPECT_TRUE(HasReason(out.result.status(), Reason::kOrderNotFound));
  EXPECT_EQ(paykka_.calls(Op::kQuerySession), 0);
}

TEST_F(QueryTest, QueriesWorkWhileTheStoreIsDown) {
  testing::UnavailableIdempotencyStore down;
  PaymentService service(&paykka_, &down, testing::TestRegistry(), &clock_);
  v1::Order o;
  o.set_trans_id("T-7");
  o.set_order_id("GW7");
  o.set_session_id("CS7");
  paykka_.PutOrder(o);
  v1::GetSessionStatusResponse s;
  s.set_trans_id("T-7");
  s.set_session_id("CS7");
  s.set_status(v1::SESSION_STATUS_COMPLETED);
  paykka_.PutSession(s);

  auto order = GetOrder(OrderBySession("CS7"), &service);
  ASSERT_TRUE(order.result.ok()) << order.result.status();
  EXPECT_EQ(order.result->order().order_id(), "GW7");
  v1::GetSessionStatusRequest q;
  q.set_merchant_id(kMerchantId);
  q.set_trans_id("T-7");
  auto session = GetSession(q, &service);
  ASSERT_TRUE(session.result.ok());
  EXPECT_EQ(session.result->status(), v1::SESSION_STATUS_COMPLETED);
}

TEST_F(QueryTest, InvalidAndUnconfiguredQueriesSendNothing) {
  v1::GetOrderRequest r;
  r.set_merchant_id(kMerchantId);
  EXPECT_EQ(GetOrder(r).result.status().code(),
            absl::StatusCode::kInvalidArgument);
  r.set_merchant_id("NOPE");
  r.set_order_id("GW1");
  EXPECT_TRUE(
      HasReason(GetOrder(r).result.status(), Reason::kMerchantNotConfigured));
  v1::GetSessionStatusRequest q;
  q.set_merchant_id("NOPE");
  q.set_session_id("CS1");
  EXPECT_TRUE(
      HasReason(GetSession(q).result.status(), Reason::kMerchantNotConfigured));
  EXPECT_EQ(paykka_.total_calls(), 0);
}

}  // namespace
}  // namespace payorch::service
