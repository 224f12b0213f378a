// payorchd serves gRPC server reflection (v1alpha, the version gRPC 1.51
// has), so that generic tools can discover the API.
#include <grpcpp/grpcpp.h>

#include <set>

#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/integration/test_util.h"

namespace payorch::testing {
namespace {

namespace refl = grpc::reflection::v1alpha;

TEST(ReflectionTest, ListsThePaymentOrchestratorAndHealthServices) {
  auto stack = Stack::Start(StackOptions::Payorchd({"--reflection"}));
  ASSERT_TRUE(stack.ok()) << stack.status();
  auto stub = refl::ServerReflection::NewStub((*stack)->Channel());
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(10));
  auto stream = stub->ServerReflectionInfo(&ctx);
  refl::ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  refl::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  std::set<std::string> services;
  for (const auto& s : resp.list_services_response().service())
    services.insert(s.name());
  EXPECT_TRUE(services.count("payorch.v1.PaymentOrchestrator"))
      << resp.DebugString();
  EXPECT_TRUE(services.count("grpc.health.v1.Health")) << resp.DebugString();

  // And the API's file descriptor, for tools that build requests from it.
  refl::ServerReflectionRequest symbol;
  symbol.set_file_containing_symbol("payorch.v1.PaymentOrchestrator");
  ASSERT_TRUE(stream->Write(symbol));
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_GT(resp.file_descriptor_response().file_descriptor_proto_size(), 0);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace payorch::testing
