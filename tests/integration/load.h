#ifndef PAYORCH_TESTS_INTEGRATION_LOAD_H_
#define PAYORCH_TESTS_INTEGRATION_LOAD_H_

// Continuous load for the zero-downtime tests: callers creating checkouts
// and querying them, every call counted once (no retry by the caller).

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "payorch/v1/payorch.grpc.pb.h"
#include "tests/integration/stack.h"
#include "tests/integration/test_util.h"

namespace payorch::testing {

// Callers sending CreateCheckout (fresh trans_id) and then GetSessionStatus
// on it, continuously, each call counted once: no retry by the caller.
class Load {
 public:
  Load(std::shared_ptr<grpc::Channel> channel, int threads)
      : stub_(payorch::v1::PaymentOrchestrator::NewStub(std::move(channel))) {
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, t] { Run(t); });
    }
  }
  ~Load() { Stop(); }
  void Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }
  int calls() const { return calls_.load(); }
  int failures() const { return failures_.load(); }
  std::vector<std::string> created() {
    absl::MutexLock lock(&mu_);
    return created_;
  }
  std::vector<std::string> errors() {
    absl::MutexLock lock(&mu_);
    return errors_;
  }

 private:
  void Fail(const std::string& what, const grpc::Status& st) {
    ++failures_;
    absl::MutexLock lock(&mu_);
    if (errors_.size() < 10) {
      errors_.push_back(absl::StrCat(what, ": ", st.error_code(), " ",
                                     ReasonOf(st), " ", st.error_message()));
    }
  }

  void Run(int t) {
    for (int i = 0; !stop_.load(); ++i) {
      const std::string trans_id = absl::StrCat(
          "roll-", t, "-", i, "-", absl::ToUnixMicros(absl::Now()));
      payorch::v1::CreateCheckoutResponse created;
      grpc::ClientContext ctx;
      SetDeadline(&ctx, absl::Seconds(10));
      ++calls_;
      grpc::Status st =
          stub_->CreateCheckout(&ctx, DropInCheckout(trans_id), &created);
      if (!st.ok()) {
        Fail("create", st);
        continue;
      }
      {
        absl::MutexLock lock(&mu_);
        created_.push_back(trans_id);
      }
      payorch::v1::GetSessionStatusRequest q;
      q.set_merchant_id(Stack::kMerchantId);
      q.set_session_id(created.session_id());
      payorch::v1::GetSessionStatusResponse session;
      grpc::ClientContext qctx;
      SetDeadline(&qctx, absl::Seconds(10));
      ++calls_;
      st = stub_->GetSessionStatus(&qctx, q, &session);
      if (!st.ok()) Fail("query", st);
    }
  }

  std::unique_ptr<payorch::v1::PaymentOrchestrator::Stub> stub_;
  std::atomic<bool> stop_{false};
  std::atomic<int> calls_{0}, failures_{0};
  absl::Mutex mu_;
  std::vector<std::string> created_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

}  // namespace payorch::testing

#endif  // PAYORCH_TESTS_INTEGRATION_LOAD_H_
