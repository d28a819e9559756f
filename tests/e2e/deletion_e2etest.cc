// End to end: deleting streams through the real logbookd's gRPC API. A
// soft delete hides a stream until it is written again; a tombstone is for
// good; both are audited in $audit and keep the receipt chain whole.
#include <grpcpp/grpcpp.h>

#include <map>
#include <optional>

#include <gtest/gtest.h>

#include "events.h"
#include "logbook/v1/event_store.grpc.pb.h"
#include "server_fixture.h"

namespace logbook {
namespace {

using testing::Event;
using testing::Events;
using testing::Positions;
using testing::Trailers;
using testing::Verified;
using testing::Versions;

class DeletionTest : public testing::ServerTest {
 protected:
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
};

TEST_F(DeletionTest, SoftDeleteHidesTheStreamUntilItIsWrittenAgain) {
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

TEST_F(DeletionTest, TombstoneIsForGood) {
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

}  // namespace
}  // namespace logbook
