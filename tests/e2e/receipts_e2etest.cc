// End to end: receipts and verification, redaction, deletion, snapshots,
// time travel and event schema versions, through the real logbookd's gRPC
// API (and the C++ client's Load). Tampering happens as the superuser,
// behind the service's back.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>

#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "events.h"
#include "logbook/client/client.h"
#include "logbook/v1/event_store.grpc.pb.h"
#include "server_fixture.h"
#include "test_env.h"

namespace logbook {
namespace {

using testing::Event;
using testing::Events;
using testing::Positions;
using testing::QueryValue;
using testing::Trailers;
using testing::Verified;
using testing::Versions;

// `t` moved by `micros` microseconds.
google::protobuf::Timestamp Plus(google::protobuf::Timestamp t, int64_t micros) {
  int64_t nanos = t.nanos() + micros * 1000;
  int64_t seconds = t.seconds() + nanos / 1000000000;
  nanos %= 1000000000;
  if (nanos < 0) {
    nanos += 1000000000;
    --seconds;
  }
  t.set_seconds(seconds);
  t.set_nanos(static_cast<int32_t>(nanos));
  return t;
}

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

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

  // DeleteStream, with an exact expected version if given.
  grpc::Status Delete(const std::string& stream, bool tombstone,
                      std::optional<uint64_t> expected = std::nullopt,
                      v1::DeleteStreamResponse* response = nullptr,
                      Trailers* trailers = nullptr) {
    grpc::ClientContext ctx;
    v1::DeleteStreamRequest request;
    request.set_stream_id(stream);
    request.set_tombstone(tombstone);
    if (expected) request.mutable_expected_version()->set_exact(*expected);
    v1::DeleteStreamResponse ignored;
    grpc::Status s = stub_->DeleteStream(&ctx, request, response ? response : &ignored);
    if (trailers != nullptr) {
      for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) {
        trailers->emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
      }
    }
    return s;
  }

  // LoadSnapshot, selecting by maximum version and schema if given.
  std::pair<v1::Snapshot, grpc::Status> Load(const std::string& stream,
                                             std::optional<uint64_t> max_version = std::nullopt,
                                             std::optional<uint32_t> schema = std::nullopt) {
    grpc::ClientContext ctx;
    v1::LoadSnapshotRequest request;
    request.set_stream_id(stream);
    if (max_version) request.set_max_version(*max_version);
    if (schema) request.set_schema_version(*schema);
    v1::Snapshot snapshot;
    grpc::Status s = stub_->LoadSnapshot(&ctx, request, &snapshot);
    return {snapshot, s};
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
      {std::nullopt, grpc::StatusCode::UNAUTHENTICATED,
       "this is an admin call: send the metadata 'authorization: Bearer <admin token>'"},
      {std::string("Basic ") + kToken, grpc::StatusCode::UNAUTHENTICATED,
       "authorization: expected 'Bearer <admin token>' (the Bearer scheme)"},
      {std::string("Bearer wrong"), grpc::StatusCode::PERMISSION_DENIED,
       "authorization: wrong admin token"},
      {std::string("Bearer ") + kToken + "x", grpc::StatusCode::PERMISSION_DENIED,
       "authorization: wrong admin token"},
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

TEST_F(ReceiptsTest, SoftDeleteHidesTheStreamUntilItIsWrittenAgain) {
  Append("s-1", Events(3));  // Positions 1-3, versions 0-2.
  std::multimap<std::string, std::string> trailers;
  grpc::Status stale = Delete("s-1", false, 1, nullptr, &trailers);
  EXPECT_EQ(stale.error_code(), grpc::StatusCode::ABORTED);
  ASSERT_EQ(trailers.count("logbook-actual-version"), 1u);
  EXPECT_EQ(trailers.find("logbook-actual-version")->second, "2");

  v1::DeleteStreamResponse deleted;
  ASSERT_TRUE(Delete("s-1", false, 2, &deleted).ok());
  EXPECT_EQ(deleted.deleted_version(), 2u);
  EXPECT_EQ(deleted.audit_position(), 4u);

  auto [gone, gone_status] = ReadStream("s-1");
  EXPECT_EQ(gone_status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(gone.empty());
  v1::StreamInfo info = GetStream("s-1");
  EXPECT_EQ(info.state(), v1::SOFT_DELETED);
  EXPECT_EQ(info.version(), 2u);
  EXPECT_EQ(info.first_version(), 3u);
  EXPECT_EQ(Delete("s-1", false).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Delete("nope-1", false).error_code(), grpc::StatusCode::NOT_FOUND);

  // The events stay in $all, followed by the audit record.
  v1::ReadAllRequest all;
  auto [log, log_status] = Read(all);
  ASSERT_TRUE(log_status.ok());
  EXPECT_EQ(Positions(log), (std::vector<uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(log[3].stream_id(), "$audit");
  EXPECT_EQ(log[3].type(), "StreamDeleted");

  // Written again, its versions continue; reads show only the new events.
  const v1::AppendResponse revived = Append("s-1", {Event("Again")});
  EXPECT_EQ(revived.first_version(), 3u);
  EXPECT_EQ(revived.first_position(), 5u);
  auto [events, status] = ReadStream("s-1");
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Versions(events), (std::vector<uint64_t>{3}));
  EXPECT_EQ(events[0].type(), "Again");
  info = GetStream("s-1");
  EXPECT_EQ(info.state(), v1::ACTIVE);
  EXPECT_EQ(info.version(), 3u);
  EXPECT_EQ(info.first_version(), 3u);
  EXPECT_EQ(info.head_hash(), revived.head_hash());

  const Verified verified = VerifyStream("s-1");
  ASSERT_TRUE(verified.status.ok()) << verified.status.error_message();
  EXPECT_TRUE(verified.result().ok());
  EXPECT_EQ(verified.result().head_hash(), revived.head_hash());
}

TEST_F(ReceiptsTest, TombstoneIsForGood) {
  Append("tb-1", Events(2));  // Positions 1-2.
  v1::DeleteStreamResponse deleted;
  ASSERT_TRUE(Delete("tb-1", true, std::nullopt, &deleted).ok());
  EXPECT_EQ(deleted.deleted_version(), 1u);
  EXPECT_EQ(deleted.audit_position(), 3u);

  grpc::Status append = TryAppend("tb-1", {Event("Zombie")});
  EXPECT_EQ(append.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(append.error_message().find("tombstoned"), std::string::npos)
      << append.error_message();
  auto [events, status] = ReadStream("tb-1");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(status.error_message().find("tombstoned"), std::string::npos)
      << status.error_message();
  EXPECT_TRUE(events.empty());
  const v1::StreamInfo info = GetStream("tb-1");
  EXPECT_EQ(info.state(), v1::TOMBSTONED);
  EXPECT_EQ(info.version(), 1u);
  EXPECT_EQ(Delete("tb-1", true).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Delete("tb-1", false).error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  auto [audit, audit_status] = ReadStream("$audit");
  ASSERT_TRUE(audit_status.ok());
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].type(), "StreamDeleted");
  EXPECT_EQ(audit[0].global_position(), 3u);
  EXPECT_EQ(Positions(Read(v1::ReadAllRequest()).first), (std::vector<uint64_t>{1, 2, 3}));
}

TEST_F(ReceiptsTest, SnapshotsSaveLoadAndSelectByVersionAndSchema) {
  EXPECT_EQ(Append("sn-1", Events(10)).events_since_snapshot(), 10u);  // Versions 0-9.
  const std::string binary("\0s3\xff", 4);
  v1::SaveSnapshotResponse saved;
  ASSERT_TRUE(TrySaveSnapshot("sn-1", 3, 1, binary, &saved).ok());
  EXPECT_LT(std::abs(saved.created_at().seconds() - absl::ToUnixSeconds(absl::Now())), 60);
  ASSERT_TRUE(TrySaveSnapshot("sn-1", 5, 2, "s5").ok());
  ASSERT_TRUE(TrySaveSnapshot("sn-1", 6, 1, "s6").ok());
  EXPECT_EQ(Append("sn-1", {Event("E")}).events_since_snapshot(), 4u);  // Versions 7-10.

  struct Case {
    std::optional<uint64_t> max_version;
    std::optional<uint32_t> schema;
    uint64_t version;
    uint32_t schema_version;
    std::string state;
  };
  const std::vector<Case> cases = {
      {std::nullopt, std::nullopt, 6, 1, "s6"}, {5, std::nullopt, 5, 2, "s5"},
      {5, 1, 3, 1, binary},                     {std::nullopt, 2, 5, 2, "s5"},
      {3, std::nullopt, 3, 1, binary},          {100, 1, 6, 1, "s6"},
  };
  for (const Case& c : cases) {
    auto [snapshot, status] = Load("sn-1", c.max_version, c.schema);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(snapshot.stream_id(), "sn-1");
    EXPECT_EQ(snapshot.stream_version(), c.version) << c.max_version.value_or(0);
    EXPECT_EQ(snapshot.schema_version(), c.schema_version);
    EXPECT_EQ(snapshot.state(), c.state);
    EXPECT_GT(snapshot.created_at().seconds(), 1700000000);
  }
  EXPECT_EQ(Load("sn-1", 2).second.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Load("sn-1", std::nullopt, 3).second.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Load("nope-1").second.error_code(), grpc::StatusCode::NOT_FOUND);

  grpc::Status beyond = TrySaveSnapshot("sn-1", 11, 1, "x");
  EXPECT_EQ(beyond.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(beyond.error_message(),
            "stream_version: 11 is beyond the head of stream 'sn-1', version 10");
  EXPECT_EQ(TrySaveSnapshot("nope-1", 0, 1, "x").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(TrySaveSnapshot("sn-1", 1, 1, std::string((4 << 20) + 1, 'x')).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);

  // The newest three are kept: a fourth drops version 3.
  ASSERT_TRUE(TrySaveSnapshot("sn-1", 8, 1, "s8").ok());
  EXPECT_EQ(Load("sn-1", 4).second.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Load("sn-1", 5).first.stream_version(), 5u);
  // Saving the same version and schema again replaces it.
  ASSERT_TRUE(TrySaveSnapshot("sn-1", 8, 1, "s8 again").ok());
  EXPECT_EQ(Load("sn-1").first.state(), "s8 again");
  EXPECT_EQ(Load("sn-1", 5).first.stream_version(), 5u);
  EXPECT_EQ(Append("sn-1", Events(2)).events_since_snapshot(), 4u);  // Versions 9-12.
}

// logbookd keeping one snapshot per stream, not three.
class SnapshotsKept : public testing::ServerTest {
 protected:
  SnapshotsKept() : ServerTest({"--snapshots-kept", "1"}) {}
};

TEST_F(SnapshotsKept, IsAFlag) {
  Client client = NewClient();
  ASSERT_TRUE(client.Append("k-1", expect::Any(), std::vector<v1::EventData>(2, Event("E"))).ok());
  ASSERT_TRUE(client.SaveSnapshot("k-1", 0, 1, "s0").ok());
  ASSERT_TRUE(client.SaveSnapshot("k-1", 1, 1, "s1").ok());
  v1::LoadSnapshotRequest request;
  request.set_stream_id("k-1");
  request.set_max_version(0);
  EXPECT_EQ(client.LoadSnapshot(request).status().code(), absl::StatusCode::kNotFound);
  request.clear_max_version();
  EXPECT_EQ(client.LoadSnapshot(request)->state(), "s1");
}

// The client library hands the actual version of an ABORTED append back, so
// a writer retries without reading the stream first.
TEST_F(ReceiptsTest, ClientReportsTheActualVersionOfAConflict) {
  Client client = NewClient();
  absl::StatusOr<v1::AppendResponse> missing =
      client.Append("cv-1", expect::Exact(0), {Event("E")});
  ASSERT_EQ(missing.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ActualVersion(missing.status()), std::nullopt);
  ASSERT_TRUE(client.Append("cv-1", expect::NoStream(), {Event("E"), Event("E")}).ok());
  absl::StatusOr<v1::AppendResponse> stale = client.Append("cv-1", expect::Exact(0), {Event("E")});
  ASSERT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ActualVersion(stale.status()), 1u);
  absl::StatusOr<v1::AppendResponse> retried =
      client.Append("cv-1", expect::Exact(*ActualVersion(stale.status())), {Event("E")});
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->first_version(), 2u);
  EXPECT_EQ(ActualVersion(absl::InvalidArgumentError("x")), std::nullopt);
}

// AppendAsync: one attempt, reported to a callback, with the same results
// (and the same conflict trailer) as Append.
TEST_F(ReceiptsTest, AsyncAppendsReportLikeAppend) {
  Client client = NewClient();
  // Waits for one AppendAsync's result.
  auto append = [&](const std::string& stream, const v1::ExpectedVersion& expected,
                    std::vector<v1::EventData> events) {
    absl::Notification done;
    absl::StatusOr<v1::AppendResponse> result;
    client.AppendAsync(stream, expected, std::move(events),
                       [&](absl::StatusOr<v1::AppendResponse> r) {
                         result = std::move(r);
                         done.Notify();
                       });
    done.WaitForNotification();
    return result;
  };
  absl::StatusOr<v1::AppendResponse> first = append("aa-1", expect::NoStream(),
                                                    {Event("E"), Event("E")});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->first_version(), 0u);
  EXPECT_EQ(first->last_version(), 1u);
  EXPECT_EQ(first->event_ids_size(), 2);
  absl::StatusOr<v1::AppendResponse> stale = append("aa-1", expect::Exact(0), {Event("E")});
  ASSERT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ActualVersion(stale.status()), 1u);
  absl::StatusOr<v1::AppendResponse> bad = append("", expect::Any(), {Event("E")});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);

  // Many in flight from one thread: each stream's appends chain from the
  // previous one's callback.
  constexpr int kStreams = 16, kAppends = 10;
  absl::BlockingCounter finished(kStreams);
  std::atomic<int> failures{0};
  std::function<void(int, int)> chain = [&](int stream, int i) {
    if (i == kAppends) {
      finished.DecrementCount();
      return;
    }
    const v1::ExpectedVersion expected = i == 0 ? expect::NoStream() : expect::Exact(i - 1);
    client.AppendAsync("ab-" + std::to_string(stream), expected, {Event("E")},
                       [&, stream, i](absl::StatusOr<v1::AppendResponse> r) {
                         if (!r.ok() || r->first_version() != static_cast<uint64_t>(i)) {
                           ++failures;
                         }
                         chain(stream, i + 1);
                       });
  };
  for (int stream = 0; stream < kStreams; ++stream) chain(stream, 0);
  finished.Wait();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(client.GetStream("ab-15")->version(), kAppends - 1u);
}

TEST_F(ReceiptsTest, TimeTravelReadsStopAtAVersionAPositionOrATime) {
  Append("tt-1", {Event("V0")});     // Position 1.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Append("tt-1", {Event("V1")});     // Position 2.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Append("other-1", {Event("O0")});  // Position 3.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Append("tt-1", {Event("V2")});     // Position 4.
  auto [events, status] = ReadStream("tt-1");
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(events.size(), 3u);
  const google::protobuf::Timestamp at_v0 = events[0].recorded_at();
  const google::protobuf::Timestamp at_v1 = events[1].recorded_at();

  auto stream_versions = [&](auto configure) {
    v1::ReadStreamRequest r;
    r.set_stream_id("tt-1");
    configure(r);
    auto [got, s] = Read(r);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return Versions(got);
  };
  using V = std::vector<uint64_t>;
  EXPECT_EQ(stream_versions([](auto& r) { r.set_until_version(1); }), (V{0, 1}));
  EXPECT_EQ(stream_versions([](auto& r) {
              r.set_until_version(1);
              r.set_direction(v1::BACKWARD);
            }),
            (V{1, 0}));
  EXPECT_EQ(stream_versions([](auto& r) {
              r.set_until_version(1);
              r.set_from_version(1);
            }),
            (V{1}));
  EXPECT_EQ(stream_versions([&](auto& r) { *r.mutable_until_time() = at_v1; }), (V{0, 1}));
  EXPECT_EQ(stream_versions([&](auto& r) { *r.mutable_until_time() = Plus(at_v1, -1); }),
            (V{0}));
  EXPECT_EQ(stream_versions([&](auto& r) {
              *r.mutable_until_time() = at_v1;
              r.set_direction(v1::BACKWARD);
              r.set_max_count(1);
            }),
            (V{1}));
  EXPECT_EQ(stream_versions([&](auto& r) {
              *r.mutable_until_time() = at_v1;
              r.set_until_version(0);
            }),
            (V{0}));
  EXPECT_EQ(stream_versions([&](auto& r) { *r.mutable_until_time() = Plus(at_v0, -1); }), (V{}));

  auto all_positions = [&](auto configure) {
    v1::ReadAllRequest r;
    configure(r);
    auto [got, s] = Read(r);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return Positions(got);
  };
  EXPECT_EQ(all_positions([](auto& r) { r.set_until_position(3); }), (V{1, 2, 3}));
  EXPECT_EQ(all_positions([](auto& r) {
              r.set_until_position(3);
              r.set_direction(v1::BACKWARD);
            }),
            (V{3, 2, 1}));
  EXPECT_EQ(all_positions([](auto& r) {
              r.set_until_position(3);
              r.set_from_position(2);
              r.set_direction(v1::BACKWARD);
            }),
            (V{2, 1}));
  EXPECT_EQ(all_positions([&](auto& r) { *r.mutable_until_time() = at_v1; }), (V{1, 2}));
  EXPECT_EQ(all_positions([&](auto& r) {
              *r.mutable_until_time() = at_v1;
              r.set_direction(v1::BACKWARD);
            }),
            (V{2, 1}));
  EXPECT_EQ(all_positions([&](auto& r) {
              *r.mutable_until_time() = Plus(at_v1, 1000000);  // A second later: everything.
              r.mutable_filter()->set_category("other");
            }),
            (V{3}));

  // Invalid times name the field.
  v1::ReadStreamRequest bad;
  bad.set_stream_id("tt-1");
  bad.mutable_until_time()->set_seconds(1);
  bad.mutable_until_time()->set_nanos(1000000000);
  auto [none, bad_status] = Read(bad);
  EXPECT_EQ(bad_status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(bad_status.error_message(), "until_time.nanos: 1000000000 is outside 0..999999999");
  v1::ReadAllRequest bad_all;
  bad_all.mutable_until_time()->set_seconds(-62135596801);
  auto [none2, bad_all_status] = Read(bad_all);
  EXPECT_EQ(bad_all_status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(bad_all_status.error_message(),
            "until_time.seconds: -62135596801 is outside 0001-01-01 to 9999-12-31 "
            "(-62135596800..253402300799)");
}

TEST_F(ReceiptsTest, TimeTravelBoundsHoldAcrossPages) {
  Append("long-1", Events(1000));
  Append("long-1", Events(1000));  // Versions 0-1999, positions 1-2000.
  v1::ReadStreamRequest forward;
  forward.set_stream_id("long-1");
  forward.set_until_version(1200);
  forward.set_max_count(100000);
  auto [events, status] = Read(forward);
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(events.size(), 1201u);
  EXPECT_EQ(events.back().stream_version(), 1200u);

  v1::ReadStreamRequest backward = forward;
  backward.set_direction(v1::BACKWARD);
  auto [back, back_status] = Read(backward);
  ASSERT_TRUE(back_status.ok());
  ASSERT_EQ(back.size(), 1201u);
  EXPECT_EQ(back.front().stream_version(), 1200u);
  EXPECT_EQ(back.back().stream_version(), 0u);

  v1::ReadAllRequest all;
  all.set_until_position(1700);
  all.set_from_position(101);
  all.set_max_count(100000);
  auto [log, log_status] = Read(all);
  ASSERT_TRUE(log_status.ok());
  ASSERT_EQ(log.size(), 1600u);
  EXPECT_EQ(log.front().global_position(), 101u);
  EXPECT_EQ(log.back().global_position(), 1700u);
  all.set_direction(v1::BACKWARD);
  all.clear_from_position();
  auto [log_back, log_back_status] = Read(all);
  ASSERT_TRUE(log_back_status.ok());
  ASSERT_EQ(log_back.size(), 1700u);
  EXPECT_EQ(log_back.front().global_position(), 1700u);
  EXPECT_EQ(log_back.back().global_position(), 1u);
}

TEST_F(ReceiptsTest, SchemaVersionsRoundTrip) {
  v1::EventData v3 = Event("Upcast");
  v3.set_schema_version(3);
  v1::EventData zero = Event("Zero");
  zero.set_schema_version(0);
  Append("sv-1", {v3, Event("None"), zero});
  auto [events, status] = ReadStream("sv-1");
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(events.size(), 3u);
  EXPECT_TRUE(events[0].has_schema_version());
  EXPECT_EQ(events[0].schema_version(), 3u);
  EXPECT_FALSE(events[1].has_schema_version());
  EXPECT_TRUE(events[2].has_schema_version());
  EXPECT_EQ(events[2].schema_version(), 0u);
  auto [log, log_status] = Read(v1::ReadAllRequest());
  ASSERT_TRUE(log_status.ok());
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[0].schema_version(), 3u);
  EXPECT_FALSE(log[1].has_schema_version());
}

TEST_F(ReceiptsTest, ClientLoadIsTheNewestSnapshotAndTheEventsAfterIt) {
  for (int i = 0; i < 10; ++i) {  // Versions 0-9, one append each: distinct times.
    Append("agg-1", {Event("E" + std::to_string(i))});
  }
  ASSERT_TRUE(TrySaveSnapshot("agg-1", 3, 1, "s3").ok());
  ASSERT_TRUE(TrySaveSnapshot("agg-1", 5, 2, "s5").ok());
  ASSERT_TRUE(TrySaveSnapshot("agg-1", 6, 1, "s6").ok());
  const std::vector<v1::RecordedEvent> stored = ReadStream("agg-1").first;
  ASSERT_EQ(stored.size(), 10u);
  Client client = NewClient();

  auto load = [&](LoadOptions options) -> std::pair<std::string, std::vector<uint64_t>> {
    absl::StatusOr<Loaded> loaded = client.Load("agg-1", options);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    if (!loaded.ok()) return {};
    return {loaded->snapshot ? loaded->snapshot->state() : "(none)", Versions(loaded->events)};
  };
  using V = std::vector<uint64_t>;
  using Result = std::pair<std::string, V>;
  EXPECT_EQ(load({}), (Result{"s6", V{7, 8, 9}}));
  EXPECT_EQ(load({std::nullopt, 5, std::nullopt}), (Result{"s5", V{}}));
  EXPECT_EQ(load({1, 5, std::nullopt}), (Result{"s3", V{4, 5}}));
  EXPECT_EQ(load({2, std::nullopt, std::nullopt}), (Result{"s5", V{6, 7, 8, 9}}));
  EXPECT_EQ(load({3, std::nullopt, std::nullopt}), (Result{"(none)", V{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}));
  EXPECT_EQ(load({std::nullopt, 2, std::nullopt}), (Result{"(none)", V{0, 1, 2}}));
  EXPECT_EQ(load({std::nullopt, std::nullopt, ToTime(stored[4].recorded_at())}),
            (Result{"s3", V{4}}));
  EXPECT_EQ(load({std::nullopt, std::nullopt, ToTime(stored[8].recorded_at()) -
                                                   absl::Microseconds(1)}),
            (Result{"s6", V{7}}));

  absl::StatusOr<Loaded> missing = client.Load("nope-1");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<Loaded> before = client.Load(
      "agg-1", {std::nullopt, std::nullopt, ToTime(stored[0].recorded_at()) - absl::Seconds(1)});
  EXPECT_EQ(before.status().code(), absl::StatusCode::kNotFound);

  // Without a snapshot, in pages.
  Append("agg-2", Events(1000));
  Append("agg-2", Events(1000));
  Append("agg-2", Events(500));
  absl::StatusOr<Loaded> long_one = client.Load("agg-2");
  ASSERT_TRUE(long_one.ok()) << long_one.status();
  EXPECT_FALSE(long_one->snapshot.has_value());
  ASSERT_EQ(long_one->events.size(), 2500u);
  for (size_t i = 0; i < long_one->events.size(); ++i) {
    ASSERT_EQ(long_one->events[i].stream_version(), i);
  }
}

}  // namespace
}  // namespace logbook
