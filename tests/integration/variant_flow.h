#ifndef PAYORCH_TESTS_INTEGRATION_VARIANT_FLOW_H_
#define PAYORCH_TESTS_INTEGRATION_VARIANT_FLOW_H_

// The idempotency flow run against a PayKKa protocol variant (a sandbox with
// another Query Session path, signing recipe or duplicate refusal) by
// PaykkaVariantTest and by the probe tests, once payorchd is configured for
// the variant: a create whose answer is lost after PayKKa committed it is
// PSP_OUTCOME_UNKNOWN; the retry (on the next replica) adopts the session
// without a second create; a repeat replays it; GetSessionStatus by trans_id
// finds it.

#include <string>

#include "gtest/gtest.h"
#include "tests/integration/test_util.h"

namespace payorch::testing {

inline void ExpectCheckoutAdoptionFlow(const Stack& s, int replicas,
                                       const std::string& tag) {
  namespace v1 = payorch::v1;
  auto create = [&s](int replica, const v1::CreateCheckoutRequest& req,
                     v1::CreateCheckoutResponse* resp) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return s.Stub(replica)->CreateCheckout(&ctx, req, resp);
  };
  ASSERT_TRUE(s.SetFaults({{{"endpoint", "/v3/payment/acq/session"},
                            {"timeout_after_commit_rate", 1.0}}})
                  .ok());
  v1::CreateCheckoutRequest req = DropInCheckout(NewTransId(tag));
  v1::CreateCheckoutResponse resp;
  grpc::Status st = create(0, req, &resp);
  EXPECT_EQ(ReasonOf(st), "PSP_OUTCOME_UNKNOWN") << st.error_message();
  ASSERT_TRUE(s.ClearFaults().ok());
  st = create(1 % replicas, req, &resp);
  ASSERT_TRUE(st.ok()) << ReasonOf(st) << " " << st.error_message();
  auto counters = s.Counters();
  ASSERT_TRUE(counters.ok());
  // Adopted, not created again.
  EXPECT_EQ((*counters)["creates_by_trans_id"].value(req.trans_id(), 0), 1);
  v1::CreateCheckoutResponse again;
  ASSERT_TRUE(create(0, req, &again).ok());
  EXPECT_EQ(again.session_id(), resp.session_id());
  v1::GetSessionStatusRequest q;
  q.set_merchant_id(Stack::kMerchantId);
  q.set_trans_id(req.trans_id());
  v1::GetSessionStatusResponse session;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  st = s.Stub()->GetSessionStatus(&ctx, q, &session);
  ASSERT_TRUE(st.ok()) << ReasonOf(st) << " " << st.error_message();
  EXPECT_EQ(session.session_id(), resp.session_id());
}

}  // namespace payorch::testing

#endif  // PAYORCH_TESTS_INTEGRATION_VARIANT_FLOW_H_
