#include "service/payment_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "adapters/paykka/http_transport.h"
#include "adapters/paykka/response_mapping.h"
#include "common/crypto.h"
#include "common/errors.h"
#include "payorch/internal/stored_outcome.pb.h"
#include "service/adoption.h"
#include "service/fingerprint.h"
#include "service/grpc_status.h"
#include "service/postpay.h"
#include "service/validation.h"

namespace payorch::service {
namespace {

// The deadline given to PayKKa: the caller's, capped by --paykka_timeout.
absl::Time UpstreamDeadline(const PaymentServiceOptions& options,
                            const Clock* clock, absl::Time deadline) {
  return std::min(deadline, clock->Now() + options.paykka_timeout);
}

using cache::Claim;
using cache::IdempotencyKey;
using paykka::MerchantConfig;

// Errors after which PayKKa certainly did not process the create. A fresh
// claim is then released and a retry starts afresh; a claim over an unknown
// outcome goes back to UNKNOWN (the store's Release()).
bool CertainlyNotProcessed(const absl::Status& s) {
  // Failed before anything was sent (e.g. signing).
  if (paykka::SendStateOf(s) == paykka::SendState::kNotSent) return true;
  std::optional<Reason> reason = ReasonOf(s);
  if (!reason) return false;
  switch (*reason) {
    case Reason::kPspUnavailable:
    case Reason::kPspRateLimited:
    case Reason::kPspAuthFailed:
    case Reason::kDeadlineExceeded:
    case Reason::kMerchantNotConfigured:
    case Reason::kInvalidField:
      return true;
    default:
      return false;
  }
}

// What a flow needs from each mutating RPC.
struct CheckoutOps {
  using Request = v1::CreateCheckoutRequest;
  using Response = v1::CreateCheckoutResponse;
  using Found = CheckoutAdoption;
  static constexpr const char* kFamily = kCheckoutFamily;
  static constexpr const char* kIdField = "trans_id";
  static const std::string& IdOf(const Request& r) { return r.trans_id(); }
  static std::vector<std::string> OtherFamilies() { return {kChargeFamily}; }

  static void Create(paykka::PaykkaClient& client, const MerchantConfig& m,
                     const Request& request, absl::Time deadline,
                     paykka::Callback<Response> done) {
    client.CreateSession(m, request, deadline, std::move(done));
  }
  static void Adopt(paykka::PaykkaClient& client, const MerchantConfig& m,
                    const Request& request, absl::Time deadline,
                    paykka::Callback<Found> done) {
    AdoptCheckout(client, m, request, deadline, std::move(done));
  }
};

struct ChargeOps {
  using Request = v1::ChargeRecurringRequest;
  using Response = v1::ChargeRecurringResponse;
  using Found = ChargeAdoption;
  static constexpr const char* kFamily = kChargeFamily;
  static constexpr const char* kIdField = "trans_id";
  static const std::string& IdOf(const Request& r) { return r.trans_id(); }
  static std::vector<std::string> OtherFamilies() { return {kCheckoutFamily}; }

  static void Create(paykka::PaykkaClient& client, const MerchantConfig& m,
                     const Request& request, absl::Time deadline,
                     paykka::Callback<Response> done) {
    client.InitiateRecurring(
        m, request, deadline,
        [done = std::move(done)](absl::StatusOr<v1::Order> order) mutable {
          if (!order.ok()) return std::move(done)(order.status());
          Response r;
          *r.mutable_order() = std::move(*order);
          std::move(done)(std::move(r));
        });
  }
  static void Adopt(paykka::PaykkaClient& client, const MerchantConfig& m,
                    const Request& request, absl::Time deadline,
                    paykka::Callback<Found> done) {
    AdoptCharge(client, m, request, deadline, std::move(done));
  }
};

// The types and family every Ops of the RPCs after the payment names.
template <typename Req, typename Resp, typename Fnd, const char* Family>
struct OpsTypes {
  using Request = Req;
  using Response = Resp;
  using Found = Fnd;
  static constexpr const char* kFamily = Family;
};

// Refunds: their own refund_trans_id namespace (service/postpay.h).
struct RefundOps : OpsTypes<v1::RefundRequest, v1::RefundResponse,
                            RefundAdoption, kRefundFamily> {
  static constexpr const char* kIdField = "refund_trans_id";
  static const std::string& IdOf(const Request& r) {
    return r.refund_trans_id();
  }
  static std::vector<std::string> OtherFamilies() { return {}; }
  static constexpr auto Create = &CreateRefund;
  static constexpr auto Adopt = &AdoptRefund;
};

// Capture, Void and CancelRecurring share the request_id namespace.
template <typename Req, typename Resp, typename Fnd, const char* Family>
struct RequestIdOps : OpsTypes<Req, Resp, Fnd, Family> {
  static constexpr const char* kIdField = "request_id";
  static const std::string& IdOf(const Req& r) { return r.request_id(); }
  static std::vector<std::string> OtherFamilies() {
    std::vector<std::string> out;
    for (const char* f :
         {kCaptureFamily, kVoidFamily, kCancelRecurringFamily}) {
      if (std::string(f) != Family) out.emplace_back(f);
    }
    return out;
  }
};

struct CaptureOps : RequestIdOps<v1::CaptureRequest, v1::CaptureResponse,
                                 CaptureAdoption, kCaptureFamily> {
  static constexpr auto Create = &CreateCapture;
  static constexpr auto Adopt = &AdoptCapture;
};

struct VoidOps : RequestIdOps<v1::VoidRequest, v1::VoidResponse, VoidAdoption,
                              kVoidFamily> {
  static constexpr auto Create = &CreateVoid;
  static constexpr auto Adopt = &AdoptVoid;
};

struct CancelRecurringOps
    : RequestIdOps<v1::CancelRecurringRequest, v1::CancelRecurringResponse,
                   CancelRecurringAdoption, kCancelRecurringFamily> {
  static constexpr auto Create = &CreateCancelRecurring;
  static constexpr auto Adopt = &AdoptCancelRecurring;
};

// One mutating call's walk through docs/architecture.md's idempotency table.
// Owned by the callbacks in flight (shared_ptr); every path ends in Finish().
template <typename Ops>
class MutationFlow : public std::enable_shared_from_this<MutationFlow<Ops>> {
 public:
  using Request = typename Ops::Request;
  using Response = typename Ops::Response;
  using Found = typename Ops::Found;

  MutationFlow(const PaymentService::Deps& deps, Request request,
               std::shared_ptr<const MerchantConfig> merchant,
               absl::Time deadline, absl::Status before_create,
               OutcomeCallback<Response> done)
      : deps_(deps),
        request_(std::move(request)),
        merchant_(std::move(merchant)),
        deadline_(deadline),
        before_create_(std::move(before_create)),
        key_{Ops::kFamily, request_.merchant_id(), Ops::IdOf(request_)},
        done_(std::move(done)) {
    begin_.fingerprint = Fingerprint(*merchant_, request_);
    begin_.lease = deps_.options.lease;
    // Ours, not the store's: a Begin whose reply was lost is sent again
    // with it and finds its own claim.
    begin_.owner = RandomHex(16);
    begin_.other_families = Ops::OtherFamilies();
    begin_.request = request_.SerializeAsString();
  }

  // The claim also adds the record to the unsettled index, in the same
  // script (cache/unsettled_index.h), so the reconciler can settle it if its
  // outcome stays unknown.
  void Start() { BeginClaim(); }

 private:
  void BeginClaim() {
    ++begin_attempts_;
    deps_.store->Begin(
        key_, begin_,
        [self = this->shared_from_this()](absl::StatusOr<Claim> claim) mutable {
          self->OnClaim(std::move(claim));
        });
  }

  // A Begin that failed with the store unavailable may still have claimed
  // (a lost reply): send it once more, after the client had time to
  // reconnect, rather than leave an orphaned lease.
  bool RetryBegin(const absl::Status& error) {
    const absl::Duration delay = deps_.options.begin_retry_delay;
    if (deps_.options.timers == nullptr || begin_attempts_ > 1 ||
        !HasReason(error, Reason::kIdempotencyStoreUnavailable) ||
        deps_.clock->Now() + delay >= deadline_) {
      return false;
    }
    deps_.options.timers->RunAfter(
        delay, [self = this->shared_from_this()] { self->BeginClaim(); });
    return true;
  }

  void OnClaim(absl::StatusOr<Claim> claim) {
    if (!claim.ok()) {
      if (RetryBegin(claim.status())) return;
      return FinishError(WithRetryDelay(
          MakeError(
              Reason::kIdempotencyStoreUnavailable,
              absl::StrCat("the idempotency store is unavailable; nothing "
                           "was sent to PayKKa, retry with the same ",
                           Ops::kIdField)),
          deps_.options.store_unavailable_retry_delay));
    }
    switch (claim->outcome) {
      case Claim::Outcome::kMismatch:
        return FinishError(MakeError(
            Reason::kTransIdReused,
            absl::StrCat(Ops::kIdField,
                         " was already used with different request content"),
            IdMetadata()));
      case Claim::Outcome::kOtherFamily:
        return FinishError(
            MakeError(Reason::kTransIdReused,
                      absl::StrCat(Ops::kIdField,
                                   " was already used by another mutating RPC"),
                      IdMetadata()));
      case Claim::Outcome::kInProgress: {
        absl::Duration delay =
            std::clamp(claim->retry_after, deps_.options.min_retry_delay,
                       deps_.options.max_in_progress_retry_delay);
        return FinishError(WithRetryDelay(
            MakeError(Reason::kRequestInProgress,
                      absl::StrCat("a request with this ", Ops::kIdField,
                                   " is in flight; retry later with the "
                                   "same content"),
                      IdMetadata()),
            delay));
      }
      case Claim::Outcome::kCompleted:
        outcome_.info.replayed = true;
        return Replay(claim->stored);
      case Claim::Outcome::kAcquired:
        return OnAcquired(*claim);
    }
  }

  void OnAcquired(const Claim& claim) {
    const absl::Time now = deps_.clock->Now();
    owner_ = claim.owner_token;
    quiet_until_ = now + claim.quiet_left;
    // Never let our PayKKa call outlive our lease: a successor would
    // then reconcile while we might still create.
    upstream_deadline_ = std::min(
        UpstreamDeadline(deps_.options, deps_.clock, deadline_),
        now + deps_.options.lease -
            std::min(deps_.options.lease_margin, deps_.options.lease / 4));
    // The previous attempt may have reached PayKKa: ask by trans_id first.
    if (claim.reconcile) return Lookup(std::nullopt);
    Create();
  }

  void Replay(const std::string& stored) {
    internal::StoredOutcome record;
    if (!record.ParseFromString(stored)) {
      return FinishError(
          MakeError(Reason::kInternal, "the stored outcome is unreadable"));
    }
    if (record.has_error()) {
      outcome_.rpc_status = record.error().SerializeAsString();
      outcome_.result = FromRpcStatus(record.error());
      return Finish();
    }
    Response response;
    if (!response.ParseFromString(record.response())) {
      return FinishError(
          MakeError(Reason::kInternal, "the stored response is unreadable"));
    }
    outcome_.result = std::move(response);
    Finish();
  }

  // Adoption (service/adoption.h): over an unknown outcome (`refusal`
  // empty), or after PayKKa refused our create with `refusal`, whatever its
  // wording: an earlier attempt may hold the trans_id.
  void Lookup(std::optional<absl::Status> refusal) {
    absl::Time start = deps_.clock->Now();
    Ops::Adopt(
        *deps_.client, *merchant_, request_, upstream_deadline_,
        [self = this->shared_from_this(), start,
         refusal = std::move(refusal)](absl::StatusOr<Found> found) mutable {
          self->CountUpstream(start);
          self->OnFound(std::move(found), refusal);
        });
  }

  void OnFound(absl::StatusOr<Found> found,
               const std::optional<absl::Status>& refusal) {
    // PayKKa could not say: the outcome stays unknown.
    if (!found.ok())
      return MarkUnknownAndFail(found.status(), absl::InfinitePast());
    switch (found->verdict) {
      case Found::Verdict::kAdopt:
        return CompleteWith(std::move(found->response));
      case Found::Verdict::kReused:
        // PayKKa's object under this trans_id is not this request's, for
        // good: stored like a refusal.
        return CompleteWithError(found->reused);
      case Found::Verdict::kNotFound:
        break;
    }
    if (refusal.has_value()) return OnNothingBehindRefusal(*refusal);
    const absl::Time now = deps_.clock->Now();
    if (now < quiet_until_) {
      // PayKKa may still be processing the earlier attempt: its "not found"
      // proves nothing yet. Back to UNKNOWN; no create before the quiet
      // period ends.
      outcome_.result =
          OutcomeUnknown({{"cause", "QUIET_PERIOD"}}, quiet_until_ - now);
      return Release();
    }
    looked_before_create_ = true;
    Create();
  }

  // A refusal, and nothing under the trans_id at PayKKa. The duplicate fast
  // path (paykka::IsDuplicateTransIdRefusal, the merchant's
  // duplicate_trans_id_codes): PayKKa says it holds the trans_id, so its
  // object is not visible yet; the outcome stays unknown until the quiet
  // period is over, unless a lookup after that period preceded this create.
  // Any other refusal was about this request: stored.
  void OnNothingBehindRefusal(const absl::Status& refusal) {
    if (paykka::IsDuplicateTransIdRefusal(refusal) && !looked_before_create_) {
      return MarkUnknownAndFail(refusal, create_sent_);
    }
    CompleteWithError(refusal);
  }

  void Create() {
    // A time-dependent rule that failed: it only stops a create, never a
    // replay or an adoption of what PayKKa already has.
    if (!before_create_.ok()) return ReleaseAndFail(before_create_);
    absl::Time start = deps_.clock->Now();
    Ops::Create(*deps_.client, *merchant_, request_, upstream_deadline_,
                [self = this->shared_from_this(),
                 start](absl::StatusOr<Response> created) mutable {
                  self->CountUpstream(start);
                  self->OnCreated(std::move(created), start);
                });
  }

  void OnCreated(absl::StatusOr<Response> created, absl::Time sent) {
    create_sent_ = sent;
    if (created.ok()) return CompleteWith(std::move(*created));
    const absl::Status& error = created.status();
    // Any refusal: look before storing it (PayKKa's duplicate-trans_id
    // code and wording are not relied on).
    if (HasReason(error, Reason::kPspRejected)) return Lookup(error);
    if (CertainlyNotProcessed(error)) return ReleaseAndFail(error);
    MarkUnknownAndFail(error, sent);
  }

  void CompleteWith(Response response) {
    internal::StoredOutcome record;
    record.set_response(response.SerializeAsString());
    outcome_.result = std::move(response);
    Store(record);
  }

  // A definitive rejection: stored and answered as stored.
  void CompleteWithError(const absl::Status& error) {
    internal::StoredOutcome record;
    *record.mutable_error() = ToRpcStatus(error);
    outcome_.rpc_status = record.error().SerializeAsString();
    outcome_.result = FromRpcStatus(record.error());
    Store(record);
  }

  void Store(const internal::StoredOutcome& record) {
    deps_.store->Complete(
        key_, owner_, record.SerializeAsString(), deps_.options.retention,
        [self = this->shared_from_this()](absl::Status s) mutable {
          // Lost lease or store down: answer with PayKKa's answer anyway; a
          // successor reconciles to the same PayKKa object.
          if (!s.ok()) self->NoteStoreError("complete", s);
          self->Finish();
        });
  }

  Metadata IdMetadata() const { return {{Ops::kIdField, Ops::IdOf(request_)}}; }

  absl::Status OutcomeUnknown(Metadata metadata, absl::Duration retry) const {
    return WithRetryDelay(
        MakeError(Reason::kPspOutcomeUnknown,
                  absl::StrCat("PayKKa's outcome is unknown; retry with the "
                               "same ",
                               Ops::kIdField, " and content"),
                  metadata),
        std::max(retry, deps_.options.outcome_unknown_retry_delay));
  }

  // `sent`: when the create whose outcome is unknown was sent (InfinitePast
  // for a failed lookup): no new create before sent + paykka_timeout.
  void MarkUnknownAndFail(const absl::Status& cause, absl::Time sent) {
    Metadata metadata = MetadataOf(cause);
    if (std::optional<Reason> r = ReasonOf(cause)) {
      metadata.emplace_back("cause", std::string(ReasonName(*r)));
    }
    const absl::Time now = deps_.clock->Now();
    quiet_until_ = std::max(quiet_until_, sent + deps_.options.paykka_timeout);
    const absl::Duration quiet =
        std::max(absl::ZeroDuration(), quiet_until_ - now);
    outcome_.result = OutcomeUnknown(std::move(metadata), quiet);
    deps_.store->MarkUnknown(
        key_, owner_, quiet,
        [self = this->shared_from_this()](absl::Status s) mutable {
          if (!s.ok()) self->NoteStoreError("mark_unknown", s);
          self->Finish();
        });
  }

  void ReleaseAndFail(const absl::Status& error) {
    outcome_.result = error;
    Release();
  }

  // Answers outcome_ after giving the claim up (back to UNKNOWN if it was
  // over an unknown outcome: the store decides).
  void Release() {
    deps_.store->Release(
        key_, owner_,
        [self = this->shared_from_this()](absl::Status s) mutable {
          // The lease then simply expires and a retry reconciles.
          if (!s.ok()) self->NoteStoreError("release", s);
          self->Finish();
        });
  }

  void CountUpstream(absl::Time start) {
    outcome_.info.upstream_calls++;
    outcome_.info.upstream_latency += deps_.clock->Now() - start;
  }

  void NoteStoreError(absl::string_view op, const absl::Status& s) {
    absl::StrAppend(&outcome_.info.store_error,
                    outcome_.info.store_error.empty() ? "" : "; ", op, ": ",
                    absl::StatusCodeToString(s.code()), " ", s.message());
  }

  void FinishError(absl::Status error) {
    outcome_.result = std::move(error);
    Finish();
  }

  void Finish() { std::move(done_)(std::move(outcome_)); }

  const PaymentService::Deps& deps_;
  const Request request_;
  const std::shared_ptr<const MerchantConfig> merchant_;
  const absl::Time deadline_;
  const absl::Status before_create_;
  absl::Time upstream_deadline_;
  const IdempotencyKey key_;
  cache::BeginArgs begin_;
  int begin_attempts_ = 0;
  std::string owner_;
  // Before this, PayKKa may still be processing an earlier attempt.
  absl::Time quiet_until_ = absl::InfinitePast();
  // When this call's create was sent, and whether a lookup that found
  // nothing after the quiet period came before it.
  absl::Time create_sent_ = absl::InfinitePast();
  bool looked_before_create_ = false;
  Outcome<Response> outcome_;
  OutcomeCallback<Response> done_;
};

// The reconciler's lookup for one family: the adoption for the stored
// request, as the bytes a completed record keeps (or NOT_FOUND /
// TRANS_ID_REUSED / the query's error).
template <typename Ops>
void FindStored(paykka::PaykkaClient& client, const MerchantConfig& merchant,
                const std::string& request_bytes, absl::Time deadline,
                absl::AnyInvocable<void(absl::StatusOr<std::string>) &&> done) {
  typename Ops::Request request;
  if (!request.ParseFromString(request_bytes)) {
    return std::move(done)(
        MakeError(Reason::kInternal, "unreadable request in the index"));
  }
  Ops::Adopt(client, merchant, request, deadline,
             [done = std::move(done), id = Ops::IdOf(request)](
                 absl::StatusOr<typename Ops::Found> found) mutable {
               if (!found.ok()) return std::move(done)(found.status());
               switch (found->verdict) {
                 case Ops::Found::Verdict::kAdopt: {
                   internal::StoredOutcome record;
                   record.set_response(found->response.SerializeAsString());
                   return std::move(done)(record.SerializeAsString());
                 }
                 case Ops::Found::Verdict::kReused: {
                   // Stored like the flow stores it: a definitive refusal.
                   internal::StoredOutcome record;
                   *record.mutable_error() = ToRpcStatus(found->reused);
                   return std::move(done)(record.SerializeAsString());
                 }
                 case Ops::Found::Verdict::kNotFound:
                   break;
               }
               std::move(done)(MakeError(Reason::kOrderNotFound,
                                         "PayKKa holds nothing under this id",
                                         {{Ops::kIdField, id}}));
             });
}

template <typename Response>
void FinishNow(OutcomeCallback<Response>& done, absl::Status error) {
  Outcome<Response> outcome;
  outcome.result = std::move(error);
  std::move(done)(std::move(outcome));
}

}  // namespace

absl::Status CheckPaymentServiceOptions(const PaymentServiceOptions& options) {
  if (options.lease <= absl::ZeroDuration() ||
      options.paykka_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--lease and --paykka_timeout must be positive");
  }
  if (options.retention <= options.lease + options.paykka_timeout) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--idempotency_retention (", absl::FormatDuration(options.retention),
        ") must exceed --lease + --paykka_timeout (",
        absl::FormatDuration(options.lease + options.paykka_timeout), ")"));
  }
  return absl::OkStatus();
}

PaymentService::PaymentService(paykka::PaykkaClient* client,
                               cache::IdempotencyStore* store,
                               MerchantDirectory merchants, const Clock* clock,
                               PaymentServiceOptions options)
    : deps_{client, store, clock, options}, merchants_(std::move(merchants)) {}

absl::StatusOr<std::shared_ptr<const MerchantConfig>> PaymentService::Merchant(
    const std::string& merchant_id) const {
  std::shared_ptr<const MerchantConfig> merchant = merchants_.Find(merchant_id);
  if (merchant == nullptr) {
    return MakeError(Reason::kMerchantNotConfigured,
                     "merchant_id is not configured in payorch",
                     {{"merchant_id", merchant_id}});
  }
  return merchant;
}

void PaymentService::CreateCheckout(
    const v1::CreateCheckoutRequest& request, absl::Time deadline,
    OutcomeCallback<v1::CreateCheckoutResponse> done) {
  const absl::Time now = deps_.clock->Now();
  if (!ValidateCreateCheckoutContent(request).ok()) {
    // Every violation at once, the time window's too.
    return FinishNow(done, ValidateCreateCheckout(request, now));
  }
  auto merchant = Merchant(request.merchant_id());
  if (!merchant.ok()) return FinishNow(done, merchant.status());
  // expire_time's window is checked only before creating: a retry of a
  // completed checkout is replayed even once its expire_time has passed.
  std::make_shared<MutationFlow<CheckoutOps>>(
      deps_, request, std::move(*merchant), deadline,
      ValidateExpireTimeWindow(request, now), std::move(done))
      ->Start();
}

void PaymentService::ChargeRecurring(
    const v1::ChargeRecurringRequest& request, absl::Time deadline,
    OutcomeCallback<v1::ChargeRecurringResponse> done) {
  if (absl::Status s = ValidateChargeRecurring(request); !s.ok()) {
    return FinishNow(done, std::move(s));
  }
  auto merchant = Merchant(request.merchant_id());
  if (!merchant.ok()) return FinishNow(done, merchant.status());
  std::make_shared<MutationFlow<ChargeOps>>(deps_, request,
                                            std::move(*merchant), deadline,
                                            absl::OkStatus(), std::move(done))
      ->Start();
}

template <typename Ops>
void PaymentService::StartMutation(
    absl::Status invalid, const typename Ops::Request& request,
    absl::Time deadline, OutcomeCallback<typename Ops::Response> done) {
  if (!invalid.ok()) return FinishNow(done, std::move(invalid));
  auto merchant = Merchant(request.merchant_id());
  if (!merchant.ok()) return FinishNow(done, merchant.status());
  std::make_shared<MutationFlow<Ops>>(deps_, request, std::move(*merchant),
                                      deadline, absl::OkStatus(),
                                      std::move(done))
      ->Start();
}

void PaymentService::Refund(const v1::RefundRequest& request,
                            absl::Time deadline,
                            OutcomeCallback<v1::RefundResponse> done) {
  StartMutation<RefundOps>(ValidateRefund(request), request, deadline,
                           std::move(done));
}

void PaymentService::Capture(const v1::CaptureRequest& request,
                             absl::Time deadline,
                             OutcomeCallback<v1::CaptureResponse> done) {
  StartMutation<CaptureOps>(ValidateCapture(request), request, deadline,
                            std::move(done));
}

void PaymentService::Void(const v1::VoidRequest& request, absl::Time deadline,
                          OutcomeCallback<v1::VoidResponse> done) {
  StartMutation<VoidOps>(ValidateVoid(request), request, deadline,
                         std::move(done));
}

void PaymentService::CancelRecurring(
    const v1::CancelRecurringRequest& request, absl::Time deadline,
    OutcomeCallback<v1::CancelRecurringResponse> done) {
  StartMutation<CancelRecurringOps>(ValidateCancelRecurring(request), request,
                                    deadline, std::move(done));
}

void PaymentService::GetRefund(const v1::GetRefundRequest& request,
                               absl::Time deadline,
                               OutcomeCallback<v1::GetRefundResponse> done) {
  if (absl::Status s = ValidateGetRefund(request); !s.ok()) {
    return FinishNow(done, std::move(s));
  }
  auto merchant = Merchant(request.merchant_id());
  if (!merchant.ok()) return FinishNow(done, merchant.status());
  paykka::RefundLookup lookup{paykka::RefundLookup::Kind::kRefundTransId,
                              request.refund_trans_id()};
  if (request.lookup_case() == v1::GetRefundRequest::kRefundOrderId) {
    lookup = {paykka::RefundLookup::Kind::kRefundOrderId,
              request.refund_order_id()};
  }
  const Clock* clock = deps_.clock;
  const absl::Time start = clock->Now();
  deps_.client->QueryRefund(
      **merchant, std::move(lookup),
      UpstreamDeadline(deps_.options, clock, deadline),
      [done = std::move(done), clock,
       start](absl::StatusOr<v1::Refund> refund) mutable {
        Outcome<v1::GetRefundResponse> outcome;
        outcome.info.upstream_calls = 1;
        outcome.info.upstream_latency = clock->Now() - start;
        if (refund.ok()) {
          v1::GetRefundResponse r;
          *r.mutable_refund() = *std::move(refund);
          outcome.result = std::move(r);
        } else if (HasReason(refund.status(), Reason::kOrderNotFound)) {
          outcome.result =
              MakeError(Reason::kRefundNotFound, "PayKKa has no such refund",
                        MetadataOf(refund.status()));
        } else {
          outcome.result = refund.status();
        }
        std::move(done)(std::move(outcome));
      });
}

void PaymentService::GetSessionStatus(
    const v1::GetSessionStatusRequest& request, absl::Time deadline,
    OutcomeCallback<v1::GetSessionStatusResponse> done) {
  if (absl::Status s = ValidateGetSessionStatus(request); !s.ok()) {
    return FinishNow(done, std::move(s));
  }
  auto merchant = Merchant(request.merchant_id());
  if (!merchant.ok()) return FinishNow(done, merchant.status());
  paykka::SessionLookup lookup;
  if (request.lookup_case() == v1::GetSessionStatusRequest::kSessionId) {
    lookup = {paykka::SessionLookup::Kind::kSessionId, request.session_id()};
  } else {
    lookup = {paykka::SessionLookup::Kind::kTransId, request.trans_id()};
  }
  const Clock* clock = deps_.clock;
  absl::Time start = clock->Now();
  deadline = UpstreamDeadline(deps_.options, deps_.clock, deadline);
  deps_.client->QuerySession(
      **merchant, std::move(lookup), deadline,
      [done = std::move(done), clock,
       start](absl::StatusOr<v1::GetSessionStatusResponse> s) mutable {
        Outcome<v1::GetSessionStatusResponse> outcome;
        outcome.info.upstream_calls = 1;
        outcome.info.upstream_latency = clock->Now() - start;
        outcome.result = std::move(s);
        std::move(done)(std::move(outcome));
      });
}

void PaymentService::GetOrder(const v1::GetOrderRequest& request,
                              absl::Time deadline,
                              OutcomeCallback<v1::GetOrderResponse> done) {
  if (absl::Status s = ValidateGetOrder(request); !s.ok()) {
    return FinishNow(done, std::move(s));
  }
  auto merchant = Merchant(request.merchant_id());
  if (!merchant.ok()) return FinishNow(done, merchant.status());
  paykka::OrderLookup lookup;
  switch (request.lookup_case()) {
    case v1::GetOrderRequest::kOrderId:
      lookup = {paykka::OrderLookup::Kind::kOrderId, request.order_id()};
      break;
    case v1::GetOrderRequest::kSessionId:
      lookup = {paykka::OrderLookup::Kind::kSessionId, request.session_id()};
      break;
    default:
      lookup = {paykka::OrderLookup::Kind::kTransId, request.trans_id()};
      break;
  }
  const Clock* clock = deps_.clock;
  paykka::PaykkaClient* client = deps_.client;
  absl::Time start = clock->Now();
  const bool by_session =
      request.lookup_case() == v1::GetOrderRequest::kSessionId;
  deadline = UpstreamDeadline(deps_.options, deps_.clock, deadline);
  client->QueryTransaction(
      **merchant, std::move(lookup), deadline,
      [done = std::move(done), clock, client, start, by_session, deadline,
       merchant = *merchant, session_id = request.session_id()](
          absl::StatusOr<v1::Order> order) mutable {
        Outcome<v1::GetOrderResponse> outcome;
        outcome.info.upstream_calls = 1;
        outcome.info.upstream_latency = clock->Now() - start;
        if (order.ok()) {
          v1::GetOrderResponse response;
          *response.mutable_order() = std::move(*order);
          outcome.result = std::move(response);
          return std::move(done)(std::move(outcome));
        }
        if (!by_session || !HasReason(order.status(), Reason::kOrderNotFound)) {
          outcome.result = order.status();
          return std::move(done)(std::move(outcome));
        }
        // No order for the session: tell "unpaid yet" from "expired unpaid"
        // (no order will ever come) and "no such session".
        absl::Status order_status = order.status();
        absl::Time second_start = clock->Now();
        client->QuerySession(
            *merchant, {paykka::SessionLookup::Kind::kSessionId, session_id},
            deadline,
            [done = std::move(done), outcome = std::move(outcome), clock,
             second_start, order_status = std::move(order_status)](
                absl::StatusOr<v1::GetSessionStatusResponse> s) mutable {
              outcome.info.upstream_calls++;
              outcome.info.upstream_latency += clock->Now() - second_start;
              if (s.ok() && s->status() == v1::SESSION_STATUS_EXPIRED) {
                outcome.result =
                    MakeError(Reason::kSessionExpired,
                              "the session expired unpaid; no order will come",
                              {{"session_id", s->session_id()}});
              } else if (!s.ok() &&
                         HasReason(s.status(), Reason::kSessionNotFound)) {
                outcome.result = s.status();
              } else {
                outcome.result = std::move(order_status);
              }
              std::move(done)(std::move(outcome));
            });
      });
}

}  // namespace payorch::service

namespace payorch::service {

void FindStoredOutcome(
    paykka::PaykkaClient* client, const MerchantDirectory& merchants,
    const cache::UnsettledEntry& entry, absl::Time deadline,
    absl::AnyInvocable<void(absl::StatusOr<std::string>) &&> done) {
  std::shared_ptr<const MerchantConfig> merchant =
      merchants.Find(entry.key.merchant_id);
  if (merchant == nullptr) {
    return std::move(done)(MakeError(Reason::kMerchantNotConfigured,
                                     "merchant_id is not configured"));
  }
  // The lookup refers to *merchant until it answers: keep it alive.
  absl::AnyInvocable<void(absl::StatusOr<std::string>)&&> keep =
      [merchant,
       done = std::move(done)](absl::StatusOr<std::string> result) mutable {
        std::move(done)(std::move(result));
      };
  if (entry.key.family == kCheckoutFamily) {
    return FindStored<CheckoutOps>(*client, *merchant, entry.request, deadline,
                                   std::move(keep));
  }
  if (entry.key.family == kChargeFamily) {
    return FindStored<ChargeOps>(*client, *merchant, entry.request, deadline,
                                 std::move(keep));
  }
  if (entry.key.family == kRefundFamily) {
    return FindStored<RefundOps>(*client, *merchant, entry.request, deadline,
                                 std::move(keep));
  }
  if (entry.key.family == kCaptureFamily) {
    return FindStored<CaptureOps>(*client, *merchant, entry.request, deadline,
                                  std::move(keep));
  }
  if (entry.key.family == kVoidFamily) {
    return FindStored<VoidOps>(*client, *merchant, entry.request, deadline,
                               std::move(keep));
  }
  if (entry.key.family == kCancelRecurringFamily) {
    return FindStored<CancelRecurringOps>(*client, *merchant, entry.request,
                                          deadline, std::move(keep));
  }
  std::move(keep)(
      MakeError(Reason::kInternal, "unknown RPC family in the index"));
}

}  // namespace payorch::service
