// The append planner without a database: every outcome of an append, and
// what a group writes (append_plan.h).
#include "append_plan.h"

#include <gtest/gtest.h>

#include "absl/strings/cord.h"
#include "events.h"
#include "logbook/store/event_store.h"
#include "receipts.h"

namespace logbook::store {
namespace {

using Kind = ExpectedVersion::Kind;

const std::string kId1 = "00000000-0000-7000-8000-000000000001";
const std::string kId2 = "00000000-0000-7000-8000-000000000002";
const std::string kId3 = "00000000-0000-7000-8000-000000000003";
const std::string kId4 = "00000000-0000-7000-8000-000000000004";

AppendInput Append(const std::string& stream, ExpectedVersion expected,
                   std::vector<std::string> ids) {
  std::vector<NewEvent> events;
  // Each event carries its id in its data too.
  for (const std::string& id : ids) {
    events.push_back(testing::Event("Tick", "{\"id\":\"" + id + "\"}").Id(id));
  }
  return PrepareAppend(stream, expected, std::move(events), Writer{"ann", "default"});
}

StreamHead Missing() { return StreamHead{}; }
StreamHead Active(uint64_t version, std::string hash = std::string(32, 'h')) {
  StreamHead s;
  s.exists = true;
  s.version = version;
  s.last_position = 100 + version;
  s.head_hash = std::move(hash);
  return s;
}
StreamHead InState(StreamState state, uint64_t version) {
  StreamHead s = Active(version);
  s.state = state;
  if (state == StreamState::kSoftDeleted) s.first_version = version + 1;
  return s;
}

std::string Payload(const absl::Status& status) {
  auto p = status.GetPayload(kActualVersionPayload);
  return p ? std::string(*p) : "<none>";
}

// Every expected-version kind against a missing, an active, a soft-deleted
// and a tombstoned stream (at version 3): which hold, and what the others
// say.
TEST(CheckExpectedVersion, EveryKindAgainstEveryStreamState) {
  struct Case {
    ExpectedVersion expected;
    StreamHead stream;
    std::string error;  // "" when it holds.
    std::string payload = "<none>";
  };
  const std::string prefix = "wrong expected version for stream 's-1': expected ";
  const std::vector<Case> cases = {
      {ExpectedVersion::Any(), Missing(), ""},
      {ExpectedVersion::Any(), Active(3), ""},
      {ExpectedVersion::Any(), InState(StreamState::kSoftDeleted, 3), ""},
      {ExpectedVersion::NoStream(), Missing(), ""},
      {ExpectedVersion::NoStream(), Active(3), prefix + "no stream, but the stream is at version 3",
       "3"},
      {ExpectedVersion::NoStream(), InState(StreamState::kSoftDeleted, 3), ""},
      {ExpectedVersion::StreamExists(), Missing(),
       prefix + "an existing stream, but the stream does not exist"},
      {ExpectedVersion::StreamExists(), Active(3), ""},
      {ExpectedVersion::StreamExists(), InState(StreamState::kSoftDeleted, 3),
       prefix + "an existing stream, but the stream was deleted at version 3"},
      {ExpectedVersion::StreamExists(), InState(StreamState::kTombstoned, 3),
       prefix + "an existing stream, but the stream was deleted at version 3"},
      {ExpectedVersion::Exact(3), Missing(), prefix + "version 3, but the stream does not exist"},
      {ExpectedVersion::Exact(3), Active(3), ""},
      {ExpectedVersion::Exact(2), Active(3), prefix + "version 2, but the stream is at version 3",
       "3"},
      {ExpectedVersion::Exact(4), Active(3), prefix + "version 4, but the stream is at version 3",
       "3"},
      {ExpectedVersion::Exact(3), InState(StreamState::kSoftDeleted, 3),
       prefix + "version 3, but the stream was deleted at version 3"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(Describe(c.expected) + " against version " + std::to_string(c.stream.version));
    const absl::Status status = CheckExpectedVersion("s-1", c.expected, c.stream);
    if (c.error.empty()) {
      EXPECT_TRUE(status.ok()) << status;
    } else {
      EXPECT_EQ(status.code(), absl::StatusCode::kAborted);
      EXPECT_EQ(status.message(), c.error);
      EXPECT_EQ(Payload(status), c.payload);
    }
  }
}

TEST(CheckDelete, NeedsAStreamAndTheExpectedVersion) {
  EXPECT_EQ(CheckDelete("s-1", ExpectedVersion::Any(), false, Missing()),
            absl::NotFoundError("stream 's-1' does not exist"));
  EXPECT_EQ(CheckDelete("s-1", ExpectedVersion::Any(), true, InState(StreamState::kTombstoned, 3)),
            absl::FailedPreconditionError("stream 's-1' is already tombstoned"));
  EXPECT_EQ(
      CheckDelete("s-1", ExpectedVersion::Any(), false, InState(StreamState::kSoftDeleted, 3)),
      absl::NotFoundError("stream 's-1' is already deleted"));
  // A soft-deleted stream can still be tombstoned.
  EXPECT_TRUE(
      CheckDelete("s-1", ExpectedVersion::Any(), true, InState(StreamState::kSoftDeleted, 3)).ok());
  EXPECT_TRUE(CheckDelete("s-1", ExpectedVersion::Exact(3), false, Active(3)).ok());
  EXPECT_TRUE(CheckDelete("s-1", ExpectedVersion::StreamExists(), true, Active(3)).ok());

  const absl::Status stale = CheckDelete("s-1", ExpectedVersion::Exact(2), false, Active(3));
  EXPECT_EQ(stale.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(stale.message(),
            "wrong expected version for stream 's-1': expected version 2, but the stream is at "
            "version 3");
  EXPECT_EQ(Payload(stale), "3");
  // "No stream" never holds for a deletion, even of a soft-deleted stream.
  const absl::Status none =
      CheckDelete("s-1", ExpectedVersion::NoStream(), true, InState(StreamState::kSoftDeleted, 3));
  EXPECT_EQ(none.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(none.message(),
            "wrong expected version for stream 's-1': expected no stream, but the stream was "
            "deleted at version 3");
  EXPECT_EQ(Payload(none), "<none>");
  EXPECT_EQ(CheckDelete("s-1", ExpectedVersion::NoStream(), false, Active(3)).code(),
            absl::StatusCode::kAborted);
}

TEST(PlanAppends, WritesContinueTheStreamsVersions) {
  const AppendInput a = Append("a-1", ExpectedVersion::NoStream(), {kId1, kId2});
  const AppendInput b = Append("b-1", ExpectedVersion::Exact(3), {kId3});
  AppendPlan plan = PlanAppends({&a, &b}, {{"b-1", Active(3)}}, {});
  ASSERT_EQ(plan.results.size(), 2u);
  ASSERT_TRUE(plan.results[0].ok()) << plan.results[0].status();
  ASSERT_TRUE(plan.results[1].ok()) << plan.results[1].status();
  EXPECT_TRUE(plan.AllAccepted());
  EXPECT_EQ(plan.written, (std::vector<bool>{true, true}));
  EXPECT_EQ(plan.events, 3u);
  EXPECT_EQ(plan.heads, (std::vector<std::string>{"a-1", "b-1"}));
  const AppendResult& ra = *plan.results[0];
  EXPECT_FALSE(ra.duplicate);
  EXPECT_EQ(ra.first_version, 0u);
  EXPECT_EQ(ra.last_version, 1u);
  EXPECT_EQ(ra.first_position, 1u);  // Places within the group, until FinishPlan.
  EXPECT_EQ(ra.last_position, 2u);
  EXPECT_EQ(ra.event_ids, (std::vector<std::string>{kId1, kId2}));
  const AppendResult& rb = *plan.results[1];
  EXPECT_EQ(rb.first_version, 4u);
  EXPECT_EQ(rb.first_position, 3u);
  EXPECT_FALSE(plan.before.at("a-1").exists);
  EXPECT_EQ(plan.after.at("a-1").version, 1u);
  EXPECT_EQ(plan.after.at("b-1").version, 4u);
  EXPECT_EQ(plan.last_event.at("a-1"), 2u);
  EXPECT_EQ(plan.last_event.at("b-1"), 3u);
}

TEST(PlanAppends, EachExpectedVersionAgainstEachStreamState) {
  const std::vector<std::pair<std::string, StreamHead>> streams = {
      {"missing", Missing()},
      {"active", Active(3)},
      {"deleted", InState(StreamState::kSoftDeleted, 3)},
      {"tombstoned", InState(StreamState::kTombstoned, 3)}};
  const std::vector<ExpectedVersion> kinds = {ExpectedVersion::Any(), ExpectedVersion::NoStream(),
                                              ExpectedVersion::StreamExists(),
                                              ExpectedVersion::Exact(3)};
  // Outcome codes, by stream (rows) and kind (columns).
  const std::vector<std::vector<absl::StatusCode>> want = {
      {absl::StatusCode::kOk, absl::StatusCode::kOk, absl::StatusCode::kAborted,
       absl::StatusCode::kAborted},
      {absl::StatusCode::kOk, absl::StatusCode::kAborted, absl::StatusCode::kOk,
       absl::StatusCode::kOk},
      {absl::StatusCode::kOk, absl::StatusCode::kOk, absl::StatusCode::kAborted,
       absl::StatusCode::kAborted},
      {absl::StatusCode::kFailedPrecondition, absl::StatusCode::kFailedPrecondition,
       absl::StatusCode::kFailedPrecondition, absl::StatusCode::kFailedPrecondition}};
  for (size_t s = 0; s < streams.size(); ++s) {
    for (size_t k = 0; k < kinds.size(); ++k) {
      SCOPED_TRACE(streams[s].first + " stream, expecting " + Describe(kinds[k]));
      const AppendInput a = Append(streams[s].first, kinds[k], {kId1});
      AppendPlan plan = PlanAppends({&a}, {streams[s]}, {});
      EXPECT_EQ(plan.results[0].status().code(), want[s][k]) << plan.results[0].status();
      EXPECT_EQ(plan.written[0], want[s][k] == absl::StatusCode::kOk);
      if (plan.written[0]) {
        // A deleted stream written again continues its versions.
        EXPECT_EQ(plan.results[0]->first_version, s == 0 ? 0u : 4u);
      }
    }
  }
  const AppendInput t = Append("tombstoned", ExpectedVersion::Any(), {kId1});
  AppendPlan plan = PlanAppends({&t}, {streams[3]}, {});
  EXPECT_EQ(plan.results[0].status(),
            absl::FailedPreconditionError(
                "stream 'tombstoned' is tombstoned (deleted for good); it cannot be written"));
  EXPECT_EQ(plan.events, 0u);
  EXPECT_FALSE(plan.AllAccepted());
}

TEST(PlanAppends, LaterAppendsToAStreamSeeTheEarlierOnesOfTheGroup) {
  const AppendInput first = Append("s-1", ExpectedVersion::NoStream(), {kId1});
  const AppendInput again = Append("s-1", ExpectedVersion::NoStream(), {kId2});
  const AppendInput next = Append("s-1", ExpectedVersion::Exact(0), {kId3});
  const AppendInput any = Append("s-1", ExpectedVersion::Any(), {kId4});
  AppendPlan plan = PlanAppends({&first, &again, &next, &any}, {}, {});
  ASSERT_TRUE(plan.results[0].ok());
  EXPECT_EQ(plan.results[1].status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(plan.results[1].status().message(),
            "wrong expected version for stream 's-1': expected no stream, but the stream is at "
            "version 0");
  ASSERT_TRUE(plan.results[2].ok()) << plan.results[2].status();
  EXPECT_EQ(plan.results[2]->first_version, 1u);
  EXPECT_EQ(plan.results[2]->first_position, 2u);
  ASSERT_TRUE(plan.results[3].ok());
  EXPECT_EQ(plan.results[3]->first_version, 2u);
  EXPECT_EQ(plan.results[3]->first_position, 3u);
  EXPECT_EQ(plan.written, (std::vector<bool>{true, false, true, true}));
  EXPECT_EQ(plan.heads, (std::vector<std::string>{"s-1"}));
  EXPECT_EQ(plan.last_event.at("s-1"), 3u);
  EXPECT_EQ(plan.after.at("s-1").version, 2u);
}

// Stored copies of kId1 and kId2 at versions 4 and 5 of s-1, positions 40
// and 41.
struct Stored {
  std::string stream = "s-1";
  StoredEvents events = {{kId1, {stream, 4, 40, 1'000'000}}, {kId2, {stream, 5, 41, 1'000'000}}};
};

// A stream row whose version its last event contradicts (edited behind
// logbookd's back) is not written to; its retries are still recognized.
TEST(PlanAppends, AStreamRowItsEventsContradictIsDataLoss) {
  StreamHead set_back = Active(3);
  set_back.last_event_version = 4;
  const Stored stored;  // kId1, kId2 in s-1 at versions 4, 5.
  const AppendInput write = Append("s-1", ExpectedVersion::Any(), {kId3});
  const AppendInput retry = Append("s-1", ExpectedVersion::Any(), {kId1, kId2});
  const AppendInput other = Append("t-1", ExpectedVersion::Any(), {kId4});
  AppendPlan plan = PlanAppends({&write, &retry, &other}, {{"s-1", set_back}}, stored.events);
  EXPECT_EQ(plan.results[0].status(),
            absl::DataLossError(
                "stream 's-1' records version 3 but its last event is version 4: its row was "
                "changed outside Logbook, so nothing is appended to it (`logbook verify s-1` "
                "names the break)"));
  ASSERT_TRUE(plan.results[1].ok()) << plan.results[1].status();
  EXPECT_TRUE(plan.results[1]->duplicate);
  ASSERT_TRUE(plan.results[2].ok()) << plan.results[2].status();
  EXPECT_EQ(plan.heads, (std::vector<std::string>{"t-1"}));
  // Loaded and consistent: written, and still consistent after the write.
  StreamHead loaded = Active(3);
  loaded.last_event_version = 3;
  AppendPlan ok = PlanAppends({&write}, {{"s-1", loaded}}, {});
  ASSERT_TRUE(ok.results[0].ok()) << ok.results[0].status();
  EXPECT_EQ(ok.after.at("s-1").last_event_version, 4u);
}

TEST(PlanAppends, AWholeRetryReturnsTheOriginalPositions) {
  const Stored stored;
  for (const ExpectedVersion& fits : {ExpectedVersion::Any(), ExpectedVersion::StreamExists(),
                                      ExpectedVersion::Exact(3)}) {
    SCOPED_TRACE(Describe(fits));
    const AppendInput retry = Append("s-1", fits, {kId1, kId2});
    AppendPlan plan = PlanAppends({&retry}, {{"s-1", Active(5)}}, stored.events);
    ASSERT_TRUE(plan.results[0].ok()) << plan.results[0].status();
    const AppendResult& r = *plan.results[0];
    EXPECT_TRUE(r.duplicate);
    EXPECT_EQ(r.first_version, 4u);
    EXPECT_EQ(r.last_version, 5u);
    EXPECT_EQ(r.first_position, 40u);
    EXPECT_EQ(r.last_position, 41u);
    EXPECT_EQ(r.committed_at, absl::FromUnixSeconds(1));
    EXPECT_EQ(r.events_since_snapshot, 6u);
    EXPECT_EQ(plan.events, 0u);
    EXPECT_FALSE(plan.written[0]);
    EXPECT_TRUE(plan.retries_in_group.empty());
  }
  // The same events expected elsewhere are not this append: the ids are
  // stored where it would not put them.
  const AppendInput elsewhere = Append("s-1", ExpectedVersion::Exact(5), {kId1, kId2});
  AppendPlan plan = PlanAppends({&elsewhere}, {{"s-1", Active(5)}}, stored.events);
  EXPECT_EQ(plan.results[0].status(),
            absl::AlreadyExistsError("events[0].event_id: " + kId1 +
                                     " is already stored in stream 's-1' at version 4"));
}

TEST(PlanAppends, PartialRetriesAndReusedIdsAreRefused) {
  const Stored stored;
  // Some of the ids stored, some new.
  const AppendInput partial = Append("s-1", ExpectedVersion::Any(), {kId3, kId2});
  // All stored, in another order than stored.
  const AppendInput swapped = Append("s-1", ExpectedVersion::Any(), {kId2, kId1});
  // Stored in another stream.
  const AppendInput other = Append("t-1", ExpectedVersion::Any(), {kId1, kId2});
  AppendPlan plan = PlanAppends({&partial, &swapped, &other},
                                {{"s-1", Active(5)}, {"t-1", Missing()}}, stored.events);
  EXPECT_EQ(plan.results[0].status(),
            absl::AlreadyExistsError("events[1].event_id: " + kId2 +
                                     " is already stored in stream 's-1' at version 5"));
  EXPECT_EQ(plan.results[1].status(),
            absl::AlreadyExistsError("events[0].event_id: " + kId2 +
                                     " is already stored in stream 's-1' at version 5"));
  EXPECT_EQ(plan.results[2].status(),
            absl::AlreadyExistsError("events[0].event_id: " + kId1 +
                                     " is already stored in stream 's-1' at version 4"));
  EXPECT_EQ(plan.events, 0u);
  EXPECT_TRUE(plan.heads.empty());
}

TEST(PlanAppends, ARetryOfAnAppendOfTheSameGroupIsPlacedWithIt) {
  const AppendInput first = Append("s-1", ExpectedVersion::NoStream(), {kId1, kId2});
  const AppendInput retry = Append("s-1", ExpectedVersion::NoStream(), {kId1, kId2});
  const AppendInput reuse = Append("t-1", ExpectedVersion::Any(), {kId2});
  AppendPlan plan = PlanAppends({&first, &retry, &reuse}, {}, {});
  ASSERT_TRUE(plan.results[1].ok()) << plan.results[1].status();
  EXPECT_TRUE(plan.results[1]->duplicate);
  EXPECT_EQ(plan.results[1]->first_position, 1u);
  EXPECT_EQ(plan.retries_in_group, (std::vector<size_t>{1}));
  EXPECT_EQ(plan.results[2].status(),
            absl::AlreadyExistsError("events[0].event_id: " + kId2 +
                                     " is already stored in stream 's-1' at version 1"));
  EXPECT_EQ(plan.events, 2u);

  const GroupReceipts receipts = HashReceipts(plan, {&first, &retry, &reuse}, 5'000'000);
  FinishPlan(plan, {&first, &retry, &reuse}, receipts, 11, 5'000'000, {{"s-1", std::nullopt}});
  EXPECT_EQ(plan.results[0]->first_position, 11u);
  EXPECT_EQ(plan.results[1]->first_position, 11u);
  EXPECT_EQ(plan.results[1]->last_position, 12u);
  EXPECT_EQ(plan.results[1]->committed_at, absl::FromUnixSeconds(5));
  EXPECT_EQ(plan.results[1]->head_hash, receipts.hashes[1]);
}

// Receipts chain from each stream's head, stream by stream, in write order.
TEST(HashReceipts, ChainFromEachStreamsHead) {
  const std::string head(32, 'h');
  const AppendInput a1 = Append("a-1", ExpectedVersion::Any(), {kId1});
  const AppendInput b1 = Append("b-1", ExpectedVersion::Any(), {kId2});
  const AppendInput a2 = Append("a-1", ExpectedVersion::Any(), {kId3, kId4});
  const std::vector<const AppendInput*> appends = {&a1, &b1, &a2};
  AppendPlan plan = PlanAppends(appends, {{"a-1", Active(7, head)}}, {});
  const GroupReceipts r = HashReceipts(plan, appends, 42);
  ASSERT_EQ(r.hashes.size(), 4u);
  auto receipt = [&](const AppendInput& a, size_t i, absl::string_view previous,
                     uint64_t version) {
    return ReceiptHash({previous, a.stream_id, version, a.event_id_bytes(i), a.events[i].type,
                        a.events[i].content_type, 42, std::nullopt, "", "", a.data_digest(i),
                        a.metadata_digest(i), "default", "ann"});
  };
  EXPECT_EQ(r.previous_hashes[0], head);
  EXPECT_EQ(r.hashes[0], receipt(a1, 0, head, 8));
  EXPECT_EQ(r.previous_hashes[1], ZeroHash());  // b-1 is new.
  EXPECT_EQ(r.hashes[1], receipt(b1, 0, ZeroHash(), 0));
  EXPECT_EQ(r.previous_hashes[2], r.hashes[0]);
  EXPECT_EQ(r.hashes[2], receipt(a2, 0, r.hashes[0], 9));
  EXPECT_EQ(r.previous_hashes[3], r.hashes[2]);
  EXPECT_EQ(r.hashes[3], receipt(a2, 1, r.hashes[2], 10));
  EXPECT_EQ(r.heads, (std::map<std::string, std::string>{{"a-1", r.hashes[3]},
                                                         {"b-1", r.hashes[1]}}));
  EXPECT_EQ(a1.data_digest(0), Sha256(a1.events[0].data));
  EXPECT_EQ(a1.metadata_digest(0), Sha256(""));
}

TEST(FinishPlan, PlacesTheGroupAndSetsHeadsAndSnapshots) {
  const std::string head(32, 'h');
  StreamHead s = Active(7, head);
  s.snapshot_version = 5;
  const Stored stored;  // kId1, kId2 in s-1 at versions 4, 5.
  const AppendInput retry = Append("s-1", ExpectedVersion::Any(), {kId1, kId2});
  const AppendInput write = Append("s-1", ExpectedVersion::Exact(7), {kId3, kId4});
  const AppendInput stale =
      Append("s-1", ExpectedVersion::Exact(7), {"00000000-0000-7000-8000-000000000005"});
  const std::vector<const AppendInput*> appends = {&retry, &write, &stale};
  AppendPlan plan = PlanAppends(appends, {{"s-1", s}}, stored.events);
  const GroupReceipts receipts = HashReceipts(plan, appends, 9'000'000);
  FinishPlan(plan, appends, receipts, 501, 9'000'000, {{"s-1", 8}});
  // The stored retry keeps its positions and sees the head as it was.
  EXPECT_EQ(plan.results[0]->first_position, 40u);
  EXPECT_EQ(plan.results[0]->head_hash, head);
  EXPECT_EQ(plan.results[0]->events_since_snapshot, 2u);  // Versions 6 and 7.
  // The written append is placed, timed and chained.
  const AppendResult& w = *plan.results[1];
  EXPECT_EQ(w.first_position, 501u);
  EXPECT_EQ(w.last_position, 502u);
  EXPECT_EQ(w.first_version, 8u);
  EXPECT_EQ(w.committed_at, absl::FromUnixSeconds(9));
  EXPECT_EQ(w.head_hash, receipts.hashes[1]);
  EXPECT_EQ(w.events_since_snapshot, 1u);  // Snapshot at 8; version 9 after it.
  EXPECT_EQ(plan.results[2].status().code(), absl::StatusCode::kAborted);
  const StreamHead& after = plan.after.at("s-1");
  EXPECT_EQ(after.version, 9u);
  EXPECT_EQ(after.last_position, 502u);
  EXPECT_EQ(after.head_hash, receipts.hashes[1]);
  EXPECT_EQ(after.snapshot_version, 8u);
}

TEST(EventsSinceSnapshot, CountsFromTheSnapshotOrTheFirstReadableVersion) {
  StreamHead s = Active(9);
  EXPECT_EQ(EventsSinceSnapshot(s), 10u);
  s.first_version = 4;  // Soft-deleted at 3, written again.
  EXPECT_EQ(EventsSinceSnapshot(s), 6u);
  s.snapshot_version = 9;
  EXPECT_EQ(EventsSinceSnapshot(s), 0u);
}

}  // namespace
}  // namespace logbook::store
