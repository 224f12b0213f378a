#include "adapters/paykka/http_paykka_client.h"

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "adapters/paykka/mapping.h"
#include "adapters/paykka/response_mapping.h"
#include "adapters/paykka/signer.h"
#include "common/errors.h"

namespace payorch::paykka {
namespace {

// What every call needs from the client; outlives the calls.
struct Env {
  EventLoop* loop;
  WorkerPool* workers;
  HttpTransport* transport;
  RetryPolicy retry;
  const Clock* clock;
};

// One PayKKa operation, possibly over several attempts (queries only).
// Owned by the closures in flight; each step hops threads explicitly:
// signing and verification on the WorkerPool, the rest on the loop.
template <typename T>
class Call : public std::enable_shared_from_this<Call<T>> {
 public:
  using Parser = std::function<absl::StatusOr<T>(const nlohmann::json& data)>;

  Call(const Env* env, MerchantConfig merchant, CallKind kind,
       absl::string_view path, std::string body, absl::Time deadline,
       Parser parse, Callback<T> done)
      : env_(env),
        merchant_(std::move(merchant)),
        kind_(kind),
        path_(path),
        body_(std::move(body)),
        deadline_(deadline),
        parse_(std::move(parse)),
        done_(std::move(done)) {}

  void Start() {
    if (env_->clock->Now() >= deadline_) {
      // Never call back on the caller's own thread, from inside its call.
      auto self = this->shared_from_this();
      env_->loop->Post([self] {
        self->Deliver(
            MakeError(Reason::kDeadlineExceeded,
                      "deadline passed before the PayKKa request was sent"));
      });
      return;
    }
    Attempt();
  }

 private:
  void Attempt() {
    ++attempts_;
    auto self = this->shared_from_this();
    env_->workers->Submit([self] { self->SignAndSend(); });
  }

  // WorkerPool thread: RSA signing, then hand the request to the transport.
  void SignAndSend() {
    if (env_->clock->Now() >= deadline_) {
      // Passed while queued for the pool: no RSA work, nothing sent (a
      // query's retry reports why the earlier attempt failed instead).
      Deliver(last_error_.has_value()
                  ? *last_error_
                  : MarkNotSent(MakeError(
                        Reason::kDeadlineExceeded,
                        "deadline passed before the PayKKa request was sent")));
      return;
    }
    // The signed bytes are the sent bytes: the request gets a copy of
    // body_, which stays for a retry.
    absl::StatusOr<HttpRequest> request =
        SignedPaykkaRequest(merchant_, path_, body_, env_->clock->Now(),
                            /*at_most_once=*/kind_ == CallKind::kMutating);
    if (!request.ok()) {
      // Nothing was sent: not an unknown outcome for a mutating call.
      Deliver(MarkNotSent(
          MakeError(Reason::kInternal, request.status().message())));
      return;
    }
    auto self = this->shared_from_this();
    env_->transport->Send(*std::move(request), deadline_,
                          [self](absl::StatusOr<HttpResponse> result) mutable {
                            self->OnResponse(std::move(result));
                          });
  }

  // Transport (loop) thread.
  void OnResponse(absl::StatusOr<HttpResponse> result) {
    if (!result.ok() || !merchant_.verify_response_signatures) {
      Finish(std::move(result), absl::OkStatus());
      return;
    }
    // Verifying (RSA) and then classifying and parsing all stay on the
    // worker: no hop back to the loop thread, which carries every socket.
    auto self = this->shared_from_this();
    env_->workers->Submit([self, result = std::move(result)]() mutable {
      absl::Status signature = VerifyPaykkaResponse(self->merchant_, *result);
      self->Finish(std::move(result), signature);
    });
  }

  // Loop or worker thread: classify, map, retry or deliver.
  void Finish(absl::StatusOr<HttpResponse> response,
              const absl::Status& signature) {
    absl::StatusOr<Envelope> envelope = ClassifyResponse(
        kind_, response, signature, merchant_.duplicate_trans_id_codes);
    absl::StatusOr<T> result = absl::UnknownError("unset");
    if (envelope.ok()) {
      result = parse_(EffectiveData(envelope->body));
      if (!result.ok()) {
        result = BadResponse(kind_, result.status().message(),
                             envelope->http_status);
      }
    } else {
      result = envelope.status();
    }
    if (!result.ok() && kind_ == CallKind::kQuery) {
      const absl::Status& error = result.status();
      if (last_error_.has_value() &&
          HasReason(error, Reason::kDeadlineExceeded)) {
        // A retry ran out of time before it was sent: report why the
        // earlier attempt failed, not the deadline.
        result = *last_error_;
      } else if (std::optional<absl::Duration> delay = env_->retry.NextDelay(
                     attempts_, error, env_->clock->Now(), deadline_)) {
        last_error_ = error;
        auto self = this->shared_from_this();
        env_->loop->RunAfter(*delay, [self] { self->Attempt(); });
        return;
      }
    }
    Deliver(std::move(result));
  }

  // Runs done_ on the current (loop or worker) thread.
  void Deliver(absl::StatusOr<T> result) {
    std::move(done_)(std::move(result));
  }

  const Env* env_;
  const MerchantConfig merchant_;
  const CallKind kind_;
  const std::string path_;
  const std::string body_;
  const absl::Time deadline_;
  Parser parse_;
  Callback<T> done_;
  int attempts_ = 0;
  std::optional<absl::Status> last_error_;
};

template <typename T, typename... Args>
void StartCall(Args&&... args) {
  std::make_shared<Call<T>>(std::forward<Args>(args)...)->Start();
}

class HttpPaykkaClient : public PaykkaClient {
 public:
  explicit HttpPaykkaClient(Env env) : env_(std::move(env)) {}

  void CreateSession(const MerchantConfig& merchant,
                     const v1::CreateCheckoutRequest& request,
                     absl::Time deadline,
                     Callback<v1::CreateCheckoutResponse> done) override {
    std::string body = CreateSessionBody(merchant.merchant_id, request);
    auto parse = [merchant, request](const nlohmann::json& data) {
      return ParseCreateSessionData(data, merchant, request);
    };
    StartCall<v1::CreateCheckoutResponse>(
        &env_, merchant, CallKind::kMutating, kCreateSessionPath,
        std::move(body), deadline, std::move(parse), std::move(done));
  }

  void QuerySession(const MerchantConfig& merchant, SessionLookup lookup,
                    absl::Time deadline,
                    Callback<v1::GetSessionStatusResponse> done) override {
    StartCall<v1::GetSessionStatusResponse>(
        &env_, merchant, CallKind::kQuery, merchant.query_session_path,
        QuerySessionBody(merchant.merchant_id, lookup), deadline,
        &ParseSessionData, std::move(done));
  }

  void QueryTransaction(const MerchantConfig& merchant, OrderLookup lookup,
                        absl::Time deadline,
                        Callback<v1::Order> done) override {
    StartCall<v1::Order>(&env_, merchant, CallKind::kQuery,
                         kQueryTransactionPath,
                         QueryTransactionBody(merchant.merchant_id, lookup),
                         deadline, &ParseOrderData, std::move(done));
  }

  void InitiateRecurring(const MerchantConfig& merchant,
                         const v1::ChargeRecurringRequest& request,
                         absl::Time deadline,
                         Callback<v1::Order> done) override {
    StartCall<v1::Order>(&env_, merchant, CallKind::kMutating,
                         kInitiateTransactionPath,
                         InitiateRecurringBody(merchant.merchant_id, request),
                         deadline, &ParseOrderData, std::move(done));
  }

  void Refund(const MerchantConfig& merchant, const v1::RefundRequest& request,
              absl::Time deadline, Callback<v1::Refund> done) override {
    StartCall<v1::Refund>(&env_, merchant, CallKind::kMutating, kRefundPath,
                          RefundBody(merchant.merchant_id, request), deadline,
                          &ParseRefundData, std::move(done));
  }

  void QueryRefund(const MerchantConfig& merchant, RefundLookup lookup,
                   absl::Time deadline, Callback<v1::Refund> done) override {
    StartCall<v1::Refund>(&env_, merchant, CallKind::kQuery, kQueryRefundPath,
                          QueryRefundBody(merchant.merchant_id, lookup),
                          deadline, &ParseRefundData, std::move(done));
  }

  void Capture(const MerchantConfig& merchant,
               const v1::CaptureRequest& request, absl::Time deadline,
               Callback<std::monostate> done) override {
    StartCall<std::monostate>(&env_, merchant, CallKind::kMutating,
                              kCapturePath,
                              CaptureBody(merchant.merchant_id, request),
                              deadline, &ParseNoData, std::move(done));
  }

  void Void(const MerchantConfig& merchant, const v1::VoidRequest& request,
            absl::Time deadline, Callback<std::monostate> done) override {
    StartCall<std::monostate>(&env_, merchant, CallKind::kMutating, kVoidPath,
                              VoidBody(merchant.merchant_id, request), deadline,
                              &ParseNoData, std::move(done));
  }

  void CancelRecurring(const MerchantConfig& merchant,
                       const v1::CancelRecurringRequest& request,
                       absl::Time deadline,
                       Callback<std::monostate> done) override {
    // Cancelling a canceled agreement is done: PayKKa's "agreement not
    // active" refusal is success.
    auto already = [done = std::move(done)](
                       absl::StatusOr<std::monostate> result) mutable {
      if (!result.ok() && HasReason(result.status(), Reason::kPspRejected)) {
        for (const auto& [key, value] : MetadataOf(result.status())) {
          if (key == "psp_ret_code" && value == kAgreementNotActiveCode) {
            return std::move(done)(std::monostate());
          }
        }
      }
      std::move(done)(std::move(result));
    };
    StartCall<std::monostate>(
        &env_, merchant, CallKind::kMutating, kCancelRecurringPath,
        CancelRecurringBody(merchant.merchant_id, request), deadline,
        &ParseNoData, std::move(already));
  }

 private:
  Env env_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PaykkaClient>> MakeHttpPaykkaClient(
    EventLoop* loop, WorkerPool* workers, HttpTransport* transport,
    HttpPaykkaClientOptions options) {
  if (loop == nullptr || workers == nullptr || transport == nullptr) {
    return absl::InvalidArgumentError(
        "MakeHttpPaykkaClient needs a loop, a worker pool and a transport");
  }
  if (options.retry.max_attempts < 1) {
    return absl::InvalidArgumentError("retry.max_attempts must be >= 1");
  }
  const Clock* clock =
      options.clock != nullptr ? options.clock : &RealClock::Get();
  return std::unique_ptr<PaykkaClient>(new HttpPaykkaClient(
      Env{loop, workers, transport,
          RetryPolicy(options.retry, std::move(options.random)), clock}));
}

}  // namespace payorch::paykka
