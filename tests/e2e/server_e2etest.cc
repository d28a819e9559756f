// End to end: the real logbookd binary, spoken to only through its gRPC API.
#include <grpcpp/grpcpp.h>

#include <thread>

#include <gtest/gtest.h>

#include "absl/synchronization/barrier.h"
#include "logbook/store/migrations.h"
#include "logbook/v1/event_store.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "events.h"
#include "logbookd_process.h"
#include "server_fixture.h"
#include "test_env.h"

namespace logbook {
namespace {

using testing::CreateMigratedDatabase;
using testing::Event;
using testing::Logbookd;
using testing::QueryValue;

// Appends, reads and their errors, and logbookd's start and stop.
class ServerTest : public testing::ServerTest {
 protected:
  std::string Rows() {
    return QueryValue(dsn_, "SELECT (SELECT count(*) FROM logbook.event_log) || '/' || "
                            "(SELECT count(*) FROM logbook.streams)");
  }
};

TEST_F(ServerTest, LogsWhatItListensOnAndTheSchemaVersion) {
  EXPECT_NE(server_->log().find("logbookd listening on 127.0.0.1:" +
                                std::to_string(server_->port()) + " (schema version " +
                                std::to_string(store::EmbeddedMigrations().latest_version()) + ","),
            std::string::npos)
      << server_->log();
}

TEST_F(ServerTest, AppendsAndReadsBackByteForByte) {
  v1::EventData binary = Event("Blob", std::string("\0\x01\xff\0", 4));
  binary.set_content_type("application/octet-stream");
  binary.set_metadata(std::string("\0meta", 5));
  binary.set_correlation_id("c-1");
  binary.set_causation_id("k-1");
  binary.set_event_id("AAAAAAAA-0000-4000-8000-000000000001");
  v1::AppendRequest request = Request("order-1", {Event("Placed", "{\"n\": [1, 2.5, null]}"), binary});
  request.mutable_expected_version()->mutable_no_stream();
  v1::AppendResponse response;
  ASSERT_TRUE(TryAppend(request, &response).ok());
  EXPECT_EQ(response.first_version(), 0u);
  EXPECT_EQ(response.last_version(), 1u);
  EXPECT_EQ(response.first_position(), 1u);
  EXPECT_EQ(response.last_position(), 2u);
  ASSERT_EQ(response.event_ids_size(), 2);
  EXPECT_EQ(response.event_ids(1), "aaaaaaaa-0000-4000-8000-000000000001");
  EXPECT_GT(response.committed_at().seconds(), 1700000000);

  v1::ReadStreamRequest read;
  read.set_stream_id("order-1");
  auto [events, status] = Read(read);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].data(), "{\"n\": [1, 2.5, null]}");
  EXPECT_EQ(events[0].content_type(), "application/json");
  EXPECT_EQ(events[0].event_id(), response.event_ids(0));
  EXPECT_EQ(events[1].data(), std::string("\0\x01\xff\0", 4));
  EXPECT_EQ(events[1].metadata(), std::string("\0meta", 5));
  EXPECT_EQ(events[1].content_type(), "application/octet-stream");
  EXPECT_EQ(events[1].correlation_id(), "c-1");
  EXPECT_EQ(events[1].causation_id(), "k-1");
  EXPECT_EQ(events[1].stream_id(), "order-1");
  EXPECT_EQ(events[1].stream_version(), 1u);
  EXPECT_EQ(events[1].global_position(), 2u);
  EXPECT_EQ(events[1].recorded_at().seconds(), response.committed_at().seconds());
  EXPECT_EQ(events[1].recorded_at().nanos(), response.committed_at().nanos());

  grpc::ClientContext ctx;
  v1::GetStreamRequest get;
  get.set_stream_id("order-1");
  v1::StreamInfo info;
  ASSERT_TRUE(stub_->GetStream(&ctx, get, &info).ok());
  EXPECT_EQ(info.version(), 1u);
  EXPECT_EQ(info.last_position(), 2u);
}

TEST_F(ServerTest, SchemaVersionsRoundTrip) {
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

TEST_F(ServerTest, ConflictReturnsAbortedWithTheActualVersionTrailer) {
  v1::AppendRequest request = Request("acct-1", {Event("Opened")});
  request.mutable_expected_version()->set_exact(0);
  std::multimap<std::string, std::string> trailers;
  grpc::Status missing = TryAppend(request, nullptr, &trailers);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(missing.error_message(),
            "wrong expected version for stream 'acct-1': expected version 0, but the stream "
            "does not exist");
  EXPECT_EQ(trailers.count("logbook-actual-version"), 0u);

  request.mutable_expected_version()->mutable_no_stream();
  ASSERT_TRUE(TryAppend(request).ok());
  ASSERT_TRUE(TryAppend(Request("acct-1", {Event("A"), Event("B")})).ok());
  request.mutable_expected_version()->set_exact(1);
  trailers.clear();
  grpc::Status stale = TryAppend(request, nullptr, &trailers);
  EXPECT_EQ(stale.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(stale.error_message(),
            "wrong expected version for stream 'acct-1': expected version 1, but the stream is "
            "at version 2");
  ASSERT_EQ(trailers.count("logbook-actual-version"), 1u);
  EXPECT_EQ(trailers.find("logbook-actual-version")->second, "2");
}

TEST_F(ServerTest, ConcurrentExactAppendsOverGrpcOneWinnerPerRound) {
  constexpr int kThreads = 16, kRounds = 20;
  for (int round = 0; round < kRounds; ++round) {
    absl::Barrier start(kThreads);
    std::vector<grpc::Status> results(kThreads);
    std::vector<std::string> actual(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        v1::AppendRequest request = Request("race-1", {Event("Tick")});
        if (round == 0) {
          request.mutable_expected_version()->mutable_no_stream();
        } else {
          request.mutable_expected_version()->set_exact(round - 1);
        }
        std::multimap<std::string, std::string> trailers;
        start.Block();
        results[t] = TryAppend(request, nullptr, &trailers);
        if (trailers.count("logbook-actual-version")) {
          actual[t] = trailers.find("logbook-actual-version")->second;
        }
      });
    }
    for (auto& th : threads) th.join();
    int winners = 0;
    for (int t = 0; t < kThreads; ++t) {
      if (results[t].ok()) {
        ++winners;
      } else {
        ASSERT_EQ(results[t].error_code(), grpc::StatusCode::ABORTED);
        ASSERT_EQ(actual[t], std::to_string(round));
      }
    }
    ASSERT_EQ(winners, 1);
  }
  EXPECT_EQ(Rows(), std::to_string(kRounds) + "/1");
}

TEST_F(ServerTest, IdempotentRetryAndReuseElsewhere) {
  v1::EventData e = Event("Placed");
  e.set_event_id("bbbbbbbb-0000-4000-8000-000000000001");
  v1::AppendRequest request = Request("order-9", {e});
  request.mutable_expected_version()->mutable_no_stream();
  v1::AppendResponse first, second;
  ASSERT_TRUE(TryAppend(request, &first).ok());
  ASSERT_TRUE(TryAppend(request, &second).ok());
  EXPECT_EQ(second.first_position(), first.first_position());
  EXPECT_EQ(second.last_version(), 0u);
  EXPECT_EQ(Rows(), "1/1");
  request.set_stream_id("order-10");
  grpc::Status reused = TryAppend(request);
  EXPECT_EQ(reused.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(reused.error_message(),
            "events[0].event_id: bbbbbbbb-0000-4000-8000-000000000001 is already stored in "
            "stream 'order-9' at version 0");
  EXPECT_EQ(Rows(), "1/1");
}

TEST_F(ServerTest, BadInputGetsItsCodeAndAPreciseMessageAndChangesNothing) {
  ASSERT_TRUE(TryAppend(Request("keep-1", {Event("A")})).ok());
  struct Case {
    std::string name;
    v1::AppendRequest request;
    grpc::StatusCode code;
    std::string message;
  };
  std::vector<Case> cases;
  cases.push_back({"empty stream id", Request("", {Event("A")}), grpc::StatusCode::INVALID_ARGUMENT,
                   "stream_id: must not be empty"});
  cases.push_back({"long stream id", Request(std::string(257, 'x'), {Event("A")}),
                   grpc::StatusCode::INVALID_ARGUMENT,
                   "stream_id: 257 bytes exceed the limit of 256"});
  cases.push_back({"invalid utf-8 stream id", Request("bad\xff", {Event("A")}),
                   grpc::StatusCode::INVALID_ARGUMENT, "stream_id: not valid UTF-8"});
  v1::EventData bad_type = Event("Order\xc0\xafPlaced");
  cases.push_back({"invalid utf-8 type", Request("keep-1", {bad_type}),
                   grpc::StatusCode::INVALID_ARGUMENT, "events[0].type: not valid UTF-8"});
  cases.push_back({"control char", Request("a\x01", {Event("A")}),
                   grpc::StatusCode::INVALID_ARGUMENT,
                   "stream_id: control characters are not allowed"});
  cases.push_back({"empty batch", Request("keep-1", {}), grpc::StatusCode::INVALID_ARGUMENT,
                   "events: an append needs at least one event"});
  v1::EventData bad_uuid = Event("A");
  bad_uuid.set_event_id("12345678-1234-1234-1234-1234567890");
  cases.push_back({"malformed uuid", Request("keep-1", {Event("A"), bad_uuid}),
                   grpc::StatusCode::INVALID_ARGUMENT,
                   "events[1].event_id: not a UUID (expected the form 8-4-4-4-12 hex digits, e.g. "
                   "0f8fad5b-d9cb-469f-a165-70867728950e)"});
  cases.push_back({"invalid json", Request("keep-1", {Event("A", "{\"a\":1,}")}),
                   grpc::StatusCode::INVALID_ARGUMENT,
                   "events[0].data: not valid JSON, but content_type is application/json (use "
                   "another content type for opaque bytes)"});
  cases.push_back({"empty type", Request("keep-1", {Event("")}),
                   grpc::StatusCode::INVALID_ARGUMENT, "events[0].type: must not be empty"});
  v1::EventData big = Event("Big", std::string(1 << 20, 'x'));
  big.set_content_type("application/octet-stream");
  big.set_metadata("m");
  cases.push_back({"oversized event", Request("keep-1", {big}),
                   grpc::StatusCode::RESOURCE_EXHAUSTED,
                   "events[0]: data and metadata are 1048577 bytes; the limit is 1048576"});
  big.clear_metadata();
  cases.push_back({"oversized batch", Request("keep-1", {big, big, big, big, big}),
                   grpc::StatusCode::RESOURCE_EXHAUSTED,
                   "events: the batch's data and metadata exceed the limit of 4194304 bytes "
                   "(reached at events[4])"});
  cases.push_back({"too many events", Request("keep-1", std::vector<v1::EventData>(1001, Event("A"))),
                   grpc::StatusCode::RESOURCE_EXHAUSTED,
                   "events: 1001 events exceed the batch limit of 1000"});
  cases.push_back({"reserved stream", Request("$all", {Event("A")}),
                   grpc::StatusCode::INVALID_ARGUMENT,
                   "stream_id: ids starting with '$' are reserved for system streams"});
  for (const Case& c : cases) {
    grpc::Status s = TryAppend(c.request);
    EXPECT_EQ(s.error_code(), c.code) << c.name;
    EXPECT_EQ(s.error_message(), c.message) << c.name;
  }
  EXPECT_EQ(Rows(), "1/1");
}

TEST_F(ServerTest, ReadsRejectUnknownEnumsAndHugeCountsAndMissingStreams) {
  // A client with a newer enum: field 3 (direction) = 7 on the wire.
  v1::ReadStreamRequest stream;
  stream.set_stream_id("keep-1");
  ASSERT_TRUE(stream.MergeFromString(std::string("\x18\x07", 2)));
  ASSERT_EQ(stream.direction(), v1::FORWARD);  // Parked among the unknown fields.
  auto [e1, s1] = Read(stream);
  EXPECT_EQ(s1.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s1.error_message(), "direction: unknown value 7 (FORWARD=0, BACKWARD=1)");

  v1::ReadAllRequest all;
  all.set_max_count(100001);
  auto [e2, s2] = Read(all);
  EXPECT_EQ(s2.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s2.error_message(), "max_count: 100001 exceeds the limit of 100000");

  stream = v1::ReadStreamRequest();
  stream.set_stream_id("nothing-here");
  auto [e3, s3] = Read(stream);
  EXPECT_EQ(s3.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s3.error_message(), "stream 'nothing-here' does not exist");

  grpc::ClientContext ctx;
  v1::GetStreamRequest get;
  get.set_stream_id("nothing-here");
  v1::StreamInfo info;
  EXPECT_EQ(stub_->GetStream(&ctx, get, &info).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServerTest, ReadsPageThroughLongRangesInOrder) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(TryAppend(Request("long-1", std::vector<v1::EventData>(400, Event("E")))).ok());
  }
  ASSERT_TRUE(TryAppend(Request("other-1", {Event("O")})).ok());

  v1::ReadStreamRequest forward;
  forward.set_stream_id("long-1");
  forward.set_from_version(5);
  forward.set_max_count(1100);
  auto [events, status] = Read(forward);
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(events.size(), 1100u);
  for (size_t i = 0; i < events.size(); ++i) ASSERT_EQ(events[i].stream_version(), i + 5);

  v1::ReadStreamRequest backward;
  backward.set_stream_id("long-1");
  backward.set_direction(v1::BACKWARD);
  backward.set_max_count(100000);
  auto [back, back_status] = Read(backward);
  ASSERT_TRUE(back_status.ok());
  ASSERT_EQ(back.size(), 1200u);
  for (size_t i = 0; i < back.size(); ++i) ASSERT_EQ(back[i].stream_version(), 1199 - i);

  v1::ReadAllRequest all;
  all.set_max_count(0);  // The default: 1,000.
  auto [page, page_status] = Read(all);
  ASSERT_TRUE(page_status.ok());
  ASSERT_EQ(page.size(), 1000u);
  EXPECT_EQ(page.back().global_position(), 1000u);

  v1::ReadAllRequest filtered;
  filtered.mutable_filter()->set_category("other");
  filtered.set_max_count(10);
  auto [others, others_status] = Read(filtered);
  ASSERT_TRUE(others_status.ok());
  ASSERT_EQ(others.size(), 1u);
  EXPECT_EQ(others[0].global_position(), 1201u);
}

TEST_F(ServerTest, ReadsSendBatchesOfEventsWhenAsked) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(TryAppend(Request("batch-1", std::vector<v1::EventData>(400, Event("E")))).ok());
  }
  // Each message's size, and every event of the call in order.
  auto messages = [&](v1::ReadAllRequest request) {
    grpc::ClientContext ctx;
    auto reader = stub_->ReadAll(&ctx, request);
    std::vector<int> sizes;
    uint64_t next = 1;
    bool in_order = true;
    v1::ReadResponse r;
    while (reader->Read(&r)) {
      if (r.has_event()) {
        sizes.push_back(-1);  // One event, unbatched.
        in_order = in_order && r.event().global_position() == next++;
      }
      for (const v1::RecordedEvent& e : r.events().events()) {
        in_order = in_order && e.global_position() == next++;
      }
      if (r.has_events()) sizes.push_back(r.events().events_size());
    }
    const grpc::Status status = reader->Finish();
    std::string out = status.ok() ? "" : status.error_message();
    for (int n : sizes) out += std::to_string(n) + " ";
    return in_order ? out : "OUT OF ORDER " + out;
  };
  v1::ReadAllRequest request;
  request.set_max_count(1100);
  request.set_max_events_per_message(400);
  // Pages of 500 from the database; a message never spans two.
  EXPECT_EQ(messages(request), "400 100 400 100 100 ");
  request.set_max_count(3);
  request.set_max_events_per_message(1);
  EXPECT_EQ(messages(request), "-1 -1 -1 ");
  request.clear_max_events_per_message();
  EXPECT_EQ(messages(request), "-1 -1 -1 ");
  request.set_max_events_per_message(1001);
  EXPECT_EQ(messages(request), "max_events_per_message: 1001 is over the limit of 1000");
  // ReadStream the same way.
  v1::ReadStreamRequest stream;
  stream.set_stream_id("batch-1");
  stream.set_max_events_per_message(1000);
  stream.set_max_count(100000);
  grpc::ClientContext ctx;
  auto reader = stub_->ReadStream(&ctx, stream);
  std::vector<int> sizes;
  v1::ReadResponse r;
  while (reader->Read(&r)) sizes.push_back(r.events().events_size());
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(sizes, (std::vector<int>{500, 500, 200}));
}

TEST_F(ServerTest, ReadsOfLargeEventsComeBackWholeAndInOrder) {
  // 200 KB events: pages and messages end at their byte bounds, not their
  // counts.
  const std::string big = "{\"pad\":\"" + std::string(200000, 'x') + "\"}";
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(TryAppend(Request("big-" + std::to_string(i),
                                  std::vector<v1::EventData>(5, Event("Big", big))))
                    .ok());
    ASSERT_TRUE(TryAppend(Request("small-" + std::to_string(i), {Event("Small")})).ok());
  }
  v1::ReadAllRequest all;
  all.set_max_count(1000);
  all.set_max_events_per_message(100);
  auto [events, status] = Read(all);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(events.size(), 24u);
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].global_position(), i + 1);
    EXPECT_EQ(events[i].data().size(), i % 6 == 5 ? 2u : big.size()) << i;
  }
  all.set_from_position(3);
  all.set_max_count(7);
  auto [some, some_status] = Read(all);
  ASSERT_TRUE(some_status.ok());
  ASSERT_EQ(some.size(), 7u);
  EXPECT_EQ(some.front().global_position(), 3u);
  EXPECT_EQ(some.back().global_position(), 9u);
}

TEST_F(ServerTest, ServesReflection) {
  auto reflection = grpc::reflection::v1alpha::ServerReflection::NewStub(server_->channel());
  grpc::ClientContext ctx;
  auto stream = reflection->ServerReflectionInfo(&ctx);
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::vector<std::string> services;
  for (const auto& s : response.list_services_response().service()) services.push_back(s.name());
  EXPECT_NE(std::find(services.begin(), services.end(), "logbook.v1.EventStore"), services.end());
  EXPECT_NE(std::find(services.begin(), services.end(), "grpc.health.v1.Health"), services.end());
  EXPECT_TRUE(stream->Finish().ok());
}

TEST(ServerStartup, RefusesADatabaseWithoutTheSchema) {
  Logbookd server(testing::DsnFor(testing::CreateDatabase()));
  EXPECT_FALSE(server.WaitServing());
  EXPECT_EQ(server.Stop(), 1);
  EXPECT_NE(server.log().find("cannot start: the database has no Logbook schema"),
            std::string::npos)
      << server.log();
}

TEST(ServerStartup, ShutsDownCleanlyOnSigterm) {
  Logbookd server(CreateMigratedDatabase());
  ASSERT_TRUE(server.WaitServing()) << server.log();
  EXPECT_EQ(server.Stop(), 0);
  EXPECT_NE(server.log().find("logbookd stopped"), std::string::npos) << server.log();
}

}  // namespace
}  // namespace logbook
