// End to end: time travel through the real logbookd's gRPC API: reads of a
// stream or of $all that stop at a version, a position or a time.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "events.h"
#include "logbook/v1/event_store.grpc.pb.h"
#include "server_fixture.h"

namespace logbook {
namespace {

using testing::Event;
using testing::Events;
using testing::Positions;
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

class TimeTravelTest : public testing::ServerTest {};

TEST_F(TimeTravelTest, TimeTravelReadsStopAtAVersionAPositionOrATime) {
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

TEST_F(TimeTravelTest, TimeTravelBoundsHoldAcrossPages) {
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

}  // namespace
}  // namespace logbook
