// End to end: receipts, verification and redaction, through the real
// logbookd's gRPC API. Tampering happens as the superuser, behind the
// service's back.
#include <grpcpp/grpcpp.h>

#include <optional>

#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "events.h"
#include "logbook/v1/event_store.grpc.pb.h"
#include "server_fixture.h"
#include "test_env.h"

namespace logbook {
namespace {

using testing::Event;
using testing::Events;
using testing::QueryValue;
using testing::Verified;

constexpr char kToken[] = "test-admin-token-0123456789";

class ReceiptsTest : public testing::ServerTest {
 protected:
  ReceiptsTest() : ServerTest({"--admin-token", kToken}) {}

  // Runs `sql` as the superuser with the append-only triggers off.
  void Tamper(const std::string& sql) {
    ASSERT_EQ(testing::Exec(dsn_, "SET session_replication_role = replica; " + sql), "");
  }

  grpc::Status Redact(const std::string& stream, uint64_t version, const std::string& reason,
                      std::optional<std::string> authorization,
                      v1::RedactEventResponse* response = nullptr,
                      v1::EventStore::Stub* stub = nullptr) {
    grpc::ClientContext ctx;
    if (authorization) ctx.AddMetadata("authorization", *authorization);
    v1::RedactEventRequest request;
    request.set_stream_id(stream);
    request.set_stream_version(version);
    request.set_reason(reason);
    v1::RedactEventResponse ignored;
    return (stub ? stub : stub_.get())->RedactEvent(&ctx, request, response ? response : &ignored);
  }
};

TEST_F(ReceiptsTest, AppendReturnsTheHeadHashThatGetStreamAndVerifyShow) {
  const v1::AppendResponse first = Append("r-1", {Event("A")});
  ASSERT_EQ(first.head_hash().size(), 32u);
  EXPECT_EQ(GetStream("r-1").head_hash(), first.head_hash());

  const v1::AppendResponse second = Append("r-1", {Event("B"), Event("C")});
  ASSERT_EQ(second.head_hash().size(), 32u);
  EXPECT_NE(second.head_hash(), first.head_hash());
  EXPECT_EQ(GetStream("r-1").head_hash(), second.head_hash());

  // Another stream has a chain of its own.
  const v1::AppendResponse other = Append("r-2", {Event("A")});
  ASSERT_EQ(other.head_hash().size(), 32u);
  EXPECT_NE(other.head_hash(), first.head_hash());
  EXPECT_EQ(GetStream("r-1").head_hash(), second.head_hash());

  const v1::AppendResponse third = Append("r-1", {Event("D")});
  EXPECT_NE(third.head_hash(), second.head_hash());
  EXPECT_NE(third.head_hash(), first.head_hash());

  // The head is the receipt of the stream's last event (position 5).
  EXPECT_EQ(QueryValue(dsn_, "SELECT encode(hash, 'hex') FROM logbook.receipts "
                             "WHERE global_position = 5"),
            absl::BytesToHexString(third.head_hash()));
  const Verified verified = VerifyStream("r-1");
  ASSERT_TRUE(verified.status.ok()) << verified.status.error_message();
  ASSERT_EQ(verified.results.size(), 1u);
  EXPECT_TRUE(verified.result().ok());
  EXPECT_EQ(verified.result().head_hash(), third.head_hash());
  EXPECT_EQ(verified.result().events_checked(), 4u);
}

TEST_F(ReceiptsTest, VerifyStreamsProgressThenOneResultWithExactCounts) {
  for (int i = 0; i < 25; ++i) Append("big-1", Events(1000));
  Append("small-1", Events(3));
  Append("small-2", Events(2));

  const Verified big = VerifyStream("big-1");
  ASSERT_TRUE(big.status.ok()) << big.status.error_message();
  ASSERT_EQ(big.results.size(), 1u);
  EXPECT_TRUE(big.result_was_last);
  EXPECT_TRUE(big.result().ok());
  EXPECT_EQ(big.result().events_checked(), 25000u);
  EXPECT_EQ(big.result().streams_checked(), 1u);
  EXPECT_EQ(big.result().head_hash(), GetStream("big-1").head_hash());
  EXPECT_FALSE(big.result().has_first_broken());
  // About 10,000 events per step, one progress message per step.
  ASSERT_GE(big.progress.size(), 2u);
  uint64_t previous = 0;
  for (const v1::VerifyProgress& p : big.progress) {
    EXPECT_GT(p.events_checked(), previous);
    EXPECT_EQ(p.events_total(), 25000u);
    previous = p.events_checked();
  }
  EXPECT_EQ(big.progress.back().events_checked(), 25000u);

  const Verified all = VerifyAll();
  ASSERT_TRUE(all.status.ok()) << all.status.error_message();
  ASSERT_EQ(all.results.size(), 1u);
  EXPECT_TRUE(all.result_was_last);
  EXPECT_TRUE(all.result().ok());
  EXPECT_EQ(all.result().events_checked(), 25005u);
  EXPECT_EQ(all.result().streams_checked(), 3u);
  ASSERT_FALSE(all.progress.empty());
  EXPECT_EQ(all.progress.back().events_checked(), 25005u);
  EXPECT_EQ(all.progress.back().events_total(), 25005u);

  const Verified small = VerifyStream("small-2");
  ASSERT_TRUE(small.status.ok());
  EXPECT_EQ(small.result().events_checked(), 2u);
  EXPECT_EQ(small.result().head_hash(), GetStream("small-2").head_hash());
}

TEST_F(ReceiptsTest, VerifyRejectsBadTargetsAndMissingStreams) {
  const Verified missing = VerifyStream("nope-1");
  EXPECT_EQ(missing.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(missing.status.error_message(), "stream 'nope-1' does not exist");
  EXPECT_TRUE(missing.results.empty());

  const Verified empty = VerifyStream("");
  EXPECT_EQ(empty.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(empty.status.error_message(), "stream_id: must not be empty");

  const Verified no_target = Verify(v1::VerifyRequest());
  EXPECT_EQ(no_target.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(no_target.status.error_message(), "target: set stream_id or all");

  // An empty log verifies.
  const Verified all = VerifyAll();
  ASSERT_TRUE(all.status.ok()) << all.status.error_message();
  EXPECT_TRUE(all.result().ok());
  EXPECT_EQ(all.result().events_checked(), 0u);
  EXPECT_EQ(all.result().streams_checked(), 0u);
}

TEST_F(ReceiptsTest, VerifyNamesTheFirstTamperedEvent) {
  Append("t-1", Events(5));               // Positions 1-5, versions 0-4.
  Append("other-1", Events(2));           // Positions 6-7.
  Append("t-1", {Event("Late")});         // Position 8, version 5.
  ASSERT_TRUE(VerifyAll().result().ok());

  Tamper("UPDATE logbook.event_log SET data = convert_to('{\"forged\":true}', 'UTF8') "
         "WHERE stream_id = 't-1' AND stream_version IN (2, 4)");
  Tamper("UPDATE logbook.event_log SET metadata = 'x'::bytea WHERE global_position = 7");

  const Verified stream = VerifyStream("t-1");
  ASSERT_TRUE(stream.status.ok()) << stream.status.error_message();
  ASSERT_EQ(stream.results.size(), 1u);
  EXPECT_FALSE(stream.result().ok());
  EXPECT_FALSE(stream.result().has_head_hash());
  const v1::BrokenEvent& broken = stream.result().first_broken();
  EXPECT_EQ(broken.stream_id(), "t-1");
  EXPECT_EQ(broken.stream_version(), 2u);
  EXPECT_EQ(broken.global_position(), 3u);
  EXPECT_EQ(broken.reason(), v1::DATA_CHANGED);
  EXPECT_FALSE(broken.detail().empty());

  const Verified other = VerifyStream("other-1");
  ASSERT_TRUE(other.status.ok());
  EXPECT_FALSE(other.result().ok());
  EXPECT_EQ(other.result().first_broken().stream_id(), "other-1");
  EXPECT_EQ(other.result().first_broken().stream_version(), 1u);
  EXPECT_EQ(other.result().first_broken().global_position(), 7u);
  EXPECT_EQ(other.result().first_broken().reason(), v1::METADATA_CHANGED);

  // The whole log: the first by global position.
  const Verified all = VerifyAll();
  ASSERT_TRUE(all.status.ok());
  EXPECT_FALSE(all.result().ok());
  EXPECT_EQ(all.result().first_broken().stream_id(), "t-1");
  EXPECT_EQ(all.result().first_broken().stream_version(), 2u);
  EXPECT_EQ(all.result().first_broken().global_position(), 3u);
  EXPECT_EQ(all.result().first_broken().reason(), v1::DATA_CHANGED);
}

TEST_F(ReceiptsTest, RedactionNeedsTheAdminTokenAndKeepsTheChainValid) {
  v1::EventData secret = Event("Registered", "{\"ssn\":\"078-05-1120\"}");
  secret.set_metadata("{\"ip\":\"10.0.0.1\"}");
  Append("red-1", {secret, Event("Confirmed", "{\"ok\":true}")});  // Positions 1, 2.
  const std::string head = GetStream("red-1").head_hash();
  const std::string reason = "GDPR erasure request 17";

  struct Refused {
    std::optional<std::string> authorization;
    grpc::StatusCode code;
    std::string message;
  };
  const std::vector<Refused> refused = {
      {std::nullopt, grpc::StatusCode::PERMISSION_DENIED,
       "RedactEvent needs the role admin; anonymous has reader,writer,consumer,operator"},
      {std::string("Basic ") + kToken, grpc::StatusCode::UNAUTHENTICATED,
       "authorization: expected 'Bearer <token>' (the Bearer scheme)"},
      {std::string("Bearer wrong"), grpc::StatusCode::UNAUTHENTICATED,
       "authorization: unknown token"},
      {std::string("Bearer ") + kToken + "x", grpc::StatusCode::UNAUTHENTICATED,
       "authorization: unknown token"},
  };
  for (const Refused& r : refused) {
    grpc::Status s = Redact("red-1", 0, reason, r.authorization);
    EXPECT_EQ(s.error_code(), r.code) << r.authorization.value_or("(none)");
    EXPECT_EQ(s.error_message(), r.message);
  }
  EXPECT_EQ(ReadStream("red-1").first.at(0).data(), "{\"ssn\":\"078-05-1120\"}");

  const std::string bearer = std::string("Bearer ") + kToken;
  v1::RedactEventResponse redacted;
  grpc::Status ok = Redact("red-1", 0, reason, bearer, &redacted);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(redacted.global_position(), 1u);
  EXPECT_EQ(redacted.audit_position(), 3u);

  auto [events, status] = ReadStream("red-1");
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].data(), "");
  EXPECT_EQ(events[0].metadata(), "");
  EXPECT_EQ(events[0].type(), "Registered");
  EXPECT_TRUE(events[0].has_redaction_reason());
  EXPECT_EQ(events[0].redaction_reason(), reason);
  EXPECT_EQ(events[1].data(), "{\"ok\":true}");
  EXPECT_FALSE(events[1].has_redaction_reason());

  v1::ReadAllRequest all;
  auto [log, log_status] = Read(all);
  ASSERT_TRUE(log_status.ok());
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[0].redaction_reason(), reason);
  EXPECT_EQ(log[2].stream_id(), "$audit");
  EXPECT_EQ(log[2].type(), "EventRedacted");

  auto [audit, audit_status] = ReadStream("$audit");
  ASSERT_TRUE(audit_status.ok()) << audit_status.error_message();
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].type(), "EventRedacted");
  EXPECT_EQ(audit[0].stream_version(), 0u);
  EXPECT_EQ(audit[0].global_position(), 3u);

  // The chain covers digests: it still verifies, with the same head.
  const Verified stream = VerifyStream("red-1");
  ASSERT_TRUE(stream.status.ok());
  EXPECT_TRUE(stream.result().ok());
  EXPECT_EQ(stream.result().events_checked(), 2u);
  EXPECT_EQ(stream.result().head_hash(), head);
  EXPECT_EQ(GetStream("red-1").head_hash(), head);
  const Verified everything = VerifyAll();
  ASSERT_TRUE(everything.status.ok());
  EXPECT_TRUE(everything.result().ok());
  EXPECT_EQ(everything.result().events_checked(), 3u);
  EXPECT_EQ(everything.result().streams_checked(), 2u);

  // Refusals that need the token first.
  EXPECT_EQ(Redact("red-1", 0, reason, bearer).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Redact("$audit", 0, reason, bearer).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  grpc::Status missing = Redact("red-1", 9, reason, bearer);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(missing.error_message(), "stream 'red-1' has no event at version 9");
  EXPECT_EQ(Redact("nope-1", 0, reason, bearer).error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::Status empty_reason = Redact("red-1", 1, "", bearer);
  EXPECT_EQ(empty_reason.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(empty_reason.error_message().rfind("reason: ", 0), 0u) << empty_reason.error_message();
  grpc::Status long_reason = Redact("red-1", 1, std::string(1025, 'r'), bearer);
  EXPECT_EQ(long_reason.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(long_reason.error_message().rfind("reason: ", 0), 0u) << long_reason.error_message();
  EXPECT_FALSE(ReadStream("red-1").first.at(1).has_redaction_reason());
  EXPECT_NE(server_->log().find("RedactEvent from "), std::string::npos) << server_->log();
}

}  // namespace
}  // namespace logbook
