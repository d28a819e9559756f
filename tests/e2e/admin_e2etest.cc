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

// Without --auth-tokens a caller without a token is anonymous, which may
// do anything but admin calls; a token nobody has is refused outright.
TEST_F(AdminToken, AnonymousCallersCannotRedact) {
  v1::RedactEventRequest request;
  request.set_stream_id("a-1");
  request.set_reason("why");
  v1::RedactEventResponse response;
  grpc::ClientContext anonymous;
  grpc::Status s = stub_->RedactEvent(&anonymous, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(s.error_message(),
            "RedactEvent needs the role admin; anonymous has reader,writer,consumer,operator");
  grpc::ClientContext guessing;
  guessing.AddMetadata("authorization", "Bearer anything");
  s = stub_->RedactEvent(&guessing, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(s.error_message(), "authorization: unknown token");
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
            absl::StatusCode::kUnauthenticated);
  absl::StatusOr<v1::RedactEventResponse> redacted = client.RedactEvent("f-1", 0, "test",
                                                                        "from-a-file");
  ASSERT_TRUE(redacted.ok()) << redacted.status();
  EXPECT_EQ(redacted->global_position(), 1u);
  EXPECT_EQ(redacted->audit_position(), 2u);
}

// Guessing the token: after 10 failed attempts within a minute, the
// source address is refused every call, even with the right token, and the
// server says so in its log.
TEST_F(AdminToken, GuessesAreLimitedPerSourceAddress) {
  StartServer({"--admin-token", "the-right-one"});
  if (HasFatalFailure()) return;
  Client client = NewClient();
  ASSERT_TRUE(client.Append("g-1", expect::Any(), {Event("A")}).ok());
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(client.RedactEvent("g-1", 0, "test", "guess-" + std::to_string(i)).status().code(),
              absl::StatusCode::kUnauthenticated)
        << i;
  }
  const absl::Status locked = client.RedactEvent("g-1", 0, "test", "the-right-one").status();
  EXPECT_EQ(locked.code(), absl::StatusCode::kResourceExhausted) << locked;
  EXPECT_EQ(locked.message().find("too many failed authentications from ipv4:127.0.0.1: calls "
                                  "from it are refused for "),
            0u)
      << locked;
  EXPECT_NE(server_->log().find("calls from ipv4:127.0.0.1 are refused for a minute: too many "
                                "failed authentications"),
            std::string::npos)
      << server_->log();
  // Nothing was redacted.
  auto [events, status] = ReadStream("g-1");
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_FALSE(events[0].has_redaction_reason());
}

}  // namespace
}  // namespace logbook
