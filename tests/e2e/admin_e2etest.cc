// End to end: admin calls (RedactEvent) and the admin token that gates
// them, given to logbookd as a flag or in a file. What redaction does is in
// receipts_e2etest.cc.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

#include "events.h"
#include "logbook/client/client.h"
#include "logbook/v1/event_store.grpc.pb.h"
#include "server_fixture.h"

namespace logbook {
namespace {

using testing::Event;

// logbookd started without an admin token; a test may restart it with one.
class AdminToken : public testing::ServerTest {};

TEST_F(AdminToken, WithoutATokenAdminCallsAreDisabled) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer anything");
  v1::RedactEventRequest request;
  request.set_stream_id("a-1");
  request.set_reason("why");
  v1::RedactEventResponse response;
  grpc::Status s = stub_->RedactEvent(&ctx, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(s.error_message(), "admin calls are disabled: start logbookd with --admin-token");
}

TEST_F(AdminToken, ReadFromAFile) {
  const std::string file = "/tmp/logbook-admin-token-" + std::to_string(getpid());
  std::ofstream(file) << "  from-a-file\n";
  StartServer({"--admin-token-file", file});
  std::remove(file.c_str());
  if (HasFatalFailure()) return;  // It did not start.
  Client client = NewClient();
  ASSERT_TRUE(client.Append("f-1", expect::Any(), {Event("A")}).ok());
  EXPECT_EQ(client.RedactEvent("f-1", 0, "test", "wrong").status().code(),
            absl::StatusCode::kPermissionDenied);
  absl::StatusOr<v1::RedactEventResponse> redacted = client.RedactEvent("f-1", 0, "test",
                                                                        "from-a-file");
  ASSERT_TRUE(redacted.ok()) << redacted.status();
  EXPECT_EQ(redacted->global_position(), 1u);
  EXPECT_EQ(redacted->audit_position(), 2u);
}

}  // namespace
}  // namespace logbook
