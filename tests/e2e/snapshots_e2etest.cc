// End to end: snapshots through the real logbookd's gRPC API: saved at a
// version and schema, selected by both, the newest few kept (how many is a
// flag of logbookd), counted in events_since_snapshot.
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <optional>

#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "events.h"
#include "logbook/client/client.h"
#include "logbook/v1/event_store.grpc.pb.h"
#include "server_fixture.h"

namespace logbook {
namespace {

using testing::Event;
using testing::Events;

class SnapshotsTest : public testing::ServerTest {
 protected:
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

TEST_F(SnapshotsTest, SnapshotsSaveLoadAndSelectByVersionAndSchema) {
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

}  // namespace
}  // namespace logbook
