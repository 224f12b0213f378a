#ifndef PAYORCH_SANDBOX_API_HANDLER_H_
#define PAYORCH_SANDBOX_API_HANDLER_H_

// The PayKKa API paths: request checks (method, Content-Type, size),
// per-endpoint and per-trans_id counters, the seeded faults (README
// "Faults"), authentication, and the store's operations. Not thread-safe
// (loop thread).

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>

#include "common/event_loop.h"
#include "sandbox/auth.h"
#include "sandbox/faults.h"
#include "sandbox/http_frontend.h"
#include "sandbox/store.h"

namespace payorch::sandbox {

class ApiHandler {
 public:
  // `committed` runs after each operation the store applied (webhooks).
  ApiHandler(HttpFrontend* http, EventLoop* loop, Store* store,
             size_t max_body_bytes, FaultConfig faults,
             std::function<void()> committed, std::string query_session_path);

  bool IsApiPath(const std::string& path) const;
  void Handle(const Request& req);

  FaultInjector& faults() { return faults_; }
  // requests_by_endpoint, requests_by_trans_id, create_requests_by_trans_id.
  Json Counters() const;
  // Create requests that arrived for `trans_id`, and all requests with it.
  int64_t CreateRequests(const std::string& trans_id) const;
  int64_t Requests(const std::string& trans_id) const;
  void ResetCounters();

 private:
  // Checks what can be answered at once; false if it was answered.
  bool Admit(const Request& req);
  void CountTransId(const Request& req);
  // After the injected latency.
  void Process(uint64_t id);
  void ReplyCommitted(uint64_t id, const ApiResponse& r,
                      const FaultDecision& f);
  void ReplyProxyPage(uint64_t id, int status);
  ApiResponse Dispatch(const Request& req, const FaultDecision& f);

  struct Call {
    Request request;
    FaultDecision fault;
  };

  HttpFrontend* http_;
  EventLoop* loop_;
  Store* store_;
  size_t max_body_bytes_;
  FaultInjector faults_;
  std::function<void()> committed_;
  const std::string query_session_path_;
  RequestAuthenticator auth_;
  std::unordered_map<uint64_t, Call> calls_;  // waiting for Process

  std::map<std::string, int64_t> requests_by_endpoint_;
  std::map<std::string, int64_t> requests_by_trans_id_;
  // Create Session / Initiate Transaction requests per trans_id, on arrival.
  std::map<std::string, int64_t> create_requests_by_trans_id_;
};

}  // namespace payorch::sandbox

#endif  // PAYORCH_SANDBOX_API_HANDLER_H_
