// The store against a real PostgreSQL: concurrency, idempotency, byte-exact
// round trips, reads, and bad input that changes nothing.
#include <gtest/gtest.h>

#include <chrono>
#include <pqxx/pqxx>
#include <thread>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/barrier.h"
#include "absl/time/clock.h"
#include "append_writer.h"
#include "connection_pool.h"
#include "events.h"
#include "log_tail.h"
#include "logbook/store/event_store.h"
#include "logbook/store/uuid.h"
#include "store_fixture.h"
#include "test_env.h"

namespace logbook::store {
namespace {

using testing::Event;
using testing::Exec;
using testing::QueryValue;

ReadStreamQuery Stream(std::string id, std::optional<uint64_t> from = std::nullopt,
                       Direction direction = Direction::kForward, uint64_t max_count = 0) {
  return {std::move(id), from, direction, max_count};
}

ReadAllQuery All(std::optional<uint64_t> from = std::nullopt,
                 Direction direction = Direction::kForward, uint64_t max_count = 0) {
  ReadAllQuery query;
  query.from_position = from;
  query.direction = direction;
  query.max_count = max_count;
  return query;
}

StoreOptions SixteenConnections() {
  StoreOptions options;
  options.pool_size = 16;
  return options;
}

class StoreTest : public testing::StoreTest {
 protected:
  StoreTest() : testing::StoreTest(SixteenConnections()) {}
};

TEST_F(StoreTest, AppendsAndReadsBackByteForByte) {
  NewEvent binary;
  binary.type = "Blob";
  binary.content_type = "application/octet-stream";
  binary.data = std::string("\0\x01\xff\0tail", 8);
  binary.metadata = std::string("\0m\0", 3);
  binary.correlation_id = "corr-1";
  binary.causation_id = "cause-1";
  NewEvent json = Event("OrderPlaced", "{\"total\": 5, \"items\": [\"\xc3\xa4\"]}");
  json.metadata = "{\"user\":\"ann\"}";

  auto result = store_->Append("order-1", ExpectedVersion::NoStream(), {json, binary});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->duplicate);
  EXPECT_EQ(result->first_version, 0u);
  EXPECT_EQ(result->last_version, 1u);
  EXPECT_EQ(result->first_position, 1u);
  EXPECT_EQ(result->last_position, 2u);
  ASSERT_EQ(result->event_ids.size(), 2u);

  auto events = store_->ReadStream(Stream("order-1"));
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 2u);
  const RecordedEvent& a = (*events)[0];
  EXPECT_EQ(a.event_id, result->event_ids[0]);
  EXPECT_EQ(a.type, "OrderPlaced");
  EXPECT_EQ(a.data, json.data);
  EXPECT_EQ(a.metadata, json.metadata);
  EXPECT_EQ(a.content_type, "application/json");
  EXPECT_EQ(a.correlation_id, "");
  EXPECT_EQ(a.stream_id, "order-1");
  EXPECT_EQ(a.stream_version, 0u);
  EXPECT_EQ(a.global_position, 1u);
  EXPECT_EQ(a.recorded_at, result->committed_at);
  const RecordedEvent& b = (*events)[1];
  EXPECT_EQ(b.event_id, result->event_ids[1]);
  EXPECT_EQ(b.data, binary.data);
  EXPECT_EQ(b.data.size(), 8u);
  EXPECT_EQ(b.metadata, binary.metadata);
  EXPECT_EQ(b.content_type, "application/octet-stream");
  EXPECT_EQ(b.correlation_id, "corr-1");
  EXPECT_EQ(b.causation_id, "cause-1");
  EXPECT_EQ(b.stream_version, 1u);
  EXPECT_EQ(b.global_position, 2u);

  auto info = store_->GetStream("order-1");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->version, 1u);
  EXPECT_EQ(info->last_position, 2u);
  EXPECT_EQ(info->created_at, result->committed_at);
}

TEST_F(StoreTest, ExpectedVersionKinds) {
  EXPECT_EQ(store_->Append("s-1", ExpectedVersion::StreamExists(), {Event("A")}).status(),
            absl::AbortedError("wrong expected version for stream 's-1': expected an existing "
                               "stream, but the stream does not exist"));
  auto exact_missing = store_->Append("s-1", ExpectedVersion::Exact(0), {Event("A")});
  EXPECT_EQ(exact_missing.status().code(), absl::StatusCode::kAborted);
  EXPECT_FALSE(exact_missing.status().GetPayload(kActualVersionPayload).has_value());

  ASSERT_TRUE(store_->Append("s-1", ExpectedVersion::NoStream(), {Event("A")}).ok());
  auto again = store_->Append("s-1", ExpectedVersion::NoStream(), {Event("A")});
  EXPECT_EQ(again.status().message(),
            "wrong expected version for stream 's-1': expected no stream, but the stream is at "
            "version 0");
  EXPECT_EQ(again.status().GetPayload(kActualVersionPayload), absl::Cord("0"));
  ASSERT_TRUE(store_->Append("s-1", ExpectedVersion::StreamExists(), {Event("B")}).ok());
  ASSERT_TRUE(store_->Append("s-1", ExpectedVersion::Any(), {Event("C"), Event("D")}).ok());
  auto stale = store_->Append("s-1", ExpectedVersion::Exact(1), {Event("E")});
  EXPECT_EQ(stale.status().GetPayload(kActualVersionPayload), absl::Cord("3"));
  auto ok = store_->Append("s-1", ExpectedVersion::Exact(3), {Event("E")});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->first_version, 4u);
  EXPECT_EQ(ok->first_position, 5u);
  EXPECT_EQ(Rows(), "5/1");
}

// Invariant 1: of N concurrent appends with the same exact expected version,
// exactly one succeeds; the rest get ABORTED and the actual version.
TEST_F(StoreTest, SixteenWritersOneStreamExactlyOneWinsEachRound) {
  constexpr int kThreads = 16;
  constexpr int kRounds = 100;
  for (int round = 0; round < kRounds; ++round) {
    const ExpectedVersion expected =
        round == 0 ? ExpectedVersion::NoStream() : ExpectedVersion::Exact(round - 1);
    absl::Barrier start(kThreads);
    std::vector<absl::Status> outcomes(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.Block();
        outcomes[t] = store_->Append("race-1", expected,
                                     {Event("Tick", "{\"thread\":" + std::to_string(t) + "}")})
                          .status();
      });
    }
    for (auto& th : threads) th.join();
    int winners = 0;
    for (const absl::Status& s : outcomes) {
      if (s.ok()) {
        ++winners;
        continue;
      }
      ASSERT_EQ(s.code(), absl::StatusCode::kAborted) << s;
      ASSERT_EQ(s.GetPayload(kActualVersionPayload), absl::Cord(std::to_string(round))) << s;
    }
    ASSERT_EQ(winners, 1) << "round " << round;
  }
  auto info = store_->GetStream("race-1");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->version, 99u);
  EXPECT_EQ(Rows(), "100/1");
  EXPECT_EQ(QueryValue(dsn_, "SELECT string_agg(DISTINCT (global_position - stream_version)::text, ',') "
                             "FROM logbook.event_log"),
            "1");
}

// Large appends to different streams run in parallel transactions (each
// with many events waiting, see GroupCommitter); they still publish in
// position order: every position from 1 on, each stream's versions in
// order, recorded_at never decreasing, receipts verifying.
TEST_F(StoreTest, ParallelTransactionsPublishInPositionOrder) {
  constexpr int kThreads = 8, kAppends = 15, kEvents = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kAppends; ++i) {
        std::vector<NewEvent> events(kEvents, Event("Tick"));
        const ExpectedVersion expected =
            i == 0 ? ExpectedVersion::NoStream() : ExpectedVersion::Exact(i * kEvents - 1);
        auto r = store_->Append("p-" + std::to_string(t), expected, std::move(events));
        ASSERT_TRUE(r.ok()) << r.status();
      }
    });
  }
  for (auto& th : threads) th.join();
  constexpr size_t kTotal = kThreads * kAppends * kEvents;
  std::vector<RecordedEvent> all;
  while (all.size() < kTotal) {
    auto page = store_->ReadAll(All(all.size() + 1, Direction::kForward, 1000));
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_FALSE(page->empty());
    all.insert(all.end(), page->begin(), page->end());
  }
  ASSERT_EQ(all.size(), kTotal);
  std::map<std::string, uint64_t> next_version;
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_EQ(all[i].global_position, i + 1);
    ASSERT_EQ(all[i].stream_version, next_version[all[i].stream_id]++);
    if (i > 0) {
      ASSERT_GE(all[i].recorded_at, all[i - 1].recorded_at);
    }
  }
  EXPECT_EQ(QueryValue(dsn_, "SELECT last_position FROM logbook.log_head"),
            std::to_string(kTotal));
  EXPECT_EQ(QueryValue(dsn_, "SELECT ok || '/' || events_checked FROM logbook.verify_all()"),
            "true/" + std::to_string(kTotal));
}

// Tickets, positions and recorded_at increase together
// (migrations/0005): a ticket for a recorded_at before the last one's is
// refused and takes nothing.
TEST_F(StoreTest, TicketsNeverGoBackInTime) {
  auto first = store_->Append("t-1", ExpectedVersion::Any(), {Event("A")});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(QueryValue(dsn_, "SELECT (t).ticket IS NULL FROM "
                             "(SELECT logbook.take_ticket(1, '2000-01-01') AS t) x"),
            "t");
  EXPECT_EQ(QueryValue(dsn_, "SELECT last_value FROM logbook.positions"), "1");
  auto second = store_->Append("t-1", ExpectedVersion::Any(), {Event("B")});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->first_position, 2u);
  EXPECT_GE(second->committed_at, first->committed_at);
  EXPECT_EQ(QueryValue(dsn_, "SELECT count(*) FROM logbook.position_gaps"), "0");
}

// Another writer (say a second logbookd whose clock is ahead) took a ticket
// with a later recorded_at than this process's clock reads: the next append,
// which logbookd hashes with its own clock first, is stored at that later
// time, so recorded_at never goes back along the log.
TEST_F(StoreTest, AnAppendBehindAnotherTicketsClockIsStoredAtThatTime) {
  ASSERT_TRUE(store_->Append("clock-1", ExpectedVersion::Any(), {Event("A")}).ok());
  const int64_t later = absl::ToUnixMicros(absl::Now()) + 10'000'000;
  QueryValue(dsn_, "SELECT setval('logbook.recorded_at_micros', " + std::to_string(later) + ")");
  auto behind = store_->Append("clock-1", ExpectedVersion::Exact(0), {Event("B")});
  ASSERT_TRUE(behind.ok()) << behind.status();
  EXPECT_EQ(absl::ToUnixMicros(behind->committed_at), later);
  EXPECT_EQ(behind->first_position, 2u);
  EXPECT_EQ(QueryValue(dsn_, "SELECT (extract(epoch FROM recorded_at) * 1000000)::bigint"
                             " FROM logbook.event_log WHERE global_position = 2"),
            std::to_string(later));
  EXPECT_EQ(QueryValue(dsn_, "SELECT count(*) FROM logbook.position_gaps"), "0");
  // Its receipt was hashed with the time it was stored at.
  EXPECT_EQ(QueryValue(dsn_, "SELECT ok || '/' || events_checked"
                             " FROM logbook.verify_stream('clock-1')"),
            "true/2");
}

// The one-call path itself: a group whose recorded_at another ticket passed
// is hashed again at that ticket's time and written by append_cached, not
// given up to the locked path (AppendWithKnownHeads returning nullopt).
TEST_F(StoreTest, TheOneCallPathCatchesUpWithALaterTicketsClock) {
  auto first = store_->Append("clock-2", ExpectedVersion::Any(), {Event("A")});
  ASSERT_TRUE(first.ok()) << first.status();
  pqxx::connection conn(dsn_);
  PrepareWriteStatements(conn);
  ASSERT_TRUE(SetSessionTenant(conn, kDefaultTenant).ok());
  const int64_t later = absl::ToUnixMicros(absl::Now()) + 10'000'000;
  QueryValue(dsn_, "SELECT setval('logbook.recorded_at_micros', " + std::to_string(later) + ")");
  const AppendInput append = PrepareAppend("clock-2", ExpectedVersion::Exact(0),
                                           {Event("B").Id(NewUuid())}, Writer{});
  StreamHead head;
  head.exists = true;
  head.version = 0;
  head.last_position = first->last_position;
  head.head_hash = first->head_hash;
  auto outcome = AppendWithKnownHeads(conn, {&append}, {{"clock-2", head}},
                                          absl::ToUnixMicros(absl::Now()));
  ASSERT_TRUE(outcome.has_value());
  ASSERT_TRUE(outcome->results[0].ok()) << outcome->results[0].status();
  EXPECT_EQ(absl::ToUnixMicros(outcome->results[0]->committed_at), later);
  EXPECT_EQ(outcome->results[0]->first_position, 2u);
  EXPECT_EQ(outcome->streams["clock-2"].version, 1u);
  EXPECT_EQ(QueryValue(dsn_, "SELECT ok || '/' || events_checked"
                             " FROM logbook.verify_stream('clock-2')"),
            "true/2");
}

// Appends look events and streams up by key, never by scanning the table,
// even with the generic plans PL/pgSQL settles on made while a fresh
// database is small and not analyzed (migrations/0006; before it, every
// append read the whole log until autovacuum's first ANALYZE).
TEST_F(StoreTest, AppendsNeverScanTheLogOrTheStreams) {
  ASSERT_EQ(Exec(dsn_, "ALTER DATABASE " + QueryValue(dsn_, "SELECT current_database()") +
                           " SET plan_cache_mode = force_generic_plan"),
            "");
  StoreOptions options;
  options.dsn = dsn_;
  auto store = EventStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = *std::move(store);
  constexpr int kAppends = 10, kBatch = 100;
  for (int i = 0; i < kAppends; ++i) {
    const ExpectedVersion expected =
        i == 0 ? ExpectedVersion::NoStream() : ExpectedVersion::Exact(i * kBatch - 1);
    auto r = store_->Append("scan-1", expected, std::vector<NewEvent>(kBatch, Event("A")));
    ASSERT_TRUE(r.ok()) << r.status();
    // And to a new stream each time, which takes the loading path
    // (load_for_append), with ids given by the caller.
    std::vector<NewEvent> given;
    for (int j = 0; j < kBatch; ++j) given.push_back(Event("B").Id(NewUuid()));
    auto any = store_->Append("scan-new-" + std::to_string(i), ExpectedVersion::NoStream(),
                              std::move(given));
    ASSERT_TRUE(any.ok()) << any.status();
  }
  const std::string events = std::to_string(2 * kAppends * kBatch);
  store_.reset();  // Its sessions end and report their statistics.
  const std::string inserted_sql =
      "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relid = 'logbook.event_log'::regclass";
  for (int i = 0; i < 200 && QueryValue(dsn_, inserted_sql) != events; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(QueryValue(dsn_, inserted_sql), events);
  EXPECT_EQ(QueryValue(dsn_, "SELECT string_agg(relname || ' ' || seq_tup_read, ', ' "
                             "ORDER BY relname) FROM pg_stat_user_tables "
                             "WHERE relname IN ('event_log', 'streams')"),
            "event_log 0, streams 0");
}

// Invariant 4: positions are contiguous (nobody rolled back) and each
// stream's versions follow position order, however writers interleave.
TEST_F(StoreTest, ConcurrentWritersGetContiguousPositions) {
  constexpr int kThreads = 8, kAppends = 40;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kAppends; ++i) {
        ASSERT_TRUE(store_->Append("w-" + std::to_string(t % 4), ExpectedVersion::Any(),
                                   {Event("A"), Event("B")})
                        .ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  auto all = store_->ReadAll(All(std::nullopt, Direction::kForward, 100000));
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), static_cast<size_t>(kThreads * kAppends * 2));
  std::map<std::string, uint64_t> next_version;
  for (size_t i = 0; i < all->size(); ++i) {
    const RecordedEvent& e = (*all)[i];
    ASSERT_EQ(e.global_position, i + 1);
    ASSERT_EQ(e.stream_version, next_version[e.stream_id]++);
    if (i > 0) {
      ASSERT_GE(e.recorded_at, (*all)[i - 1].recorded_at);
    }
  }
}

// Invariant 2: re-sending stored event ids succeeds and stores nothing twice.
TEST_F(StoreTest, IdempotentRetryAndEventIdReuse) {
  const std::string id1 = "11111111-1111-4111-8111-111111111111";
  const std::string id2 = "22222222-2222-4222-8222-222222222222";
  const std::string id3 = "33333333-3333-4333-8333-333333333333";
  ASSERT_TRUE(store_->Append("other-1", ExpectedVersion::Any(), {Event("X")}).ok());
  auto first = store_->Append("order-7", ExpectedVersion::NoStream(),
                              {Event("A").Id(id1), Event("B").Id(id2)});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(Rows(), "3/2");

  for (ExpectedVersion expected : {ExpectedVersion::NoStream(), ExpectedVersion::Any(),
                                   ExpectedVersion::StreamExists()}) {
    auto retry = store_->Append("order-7", expected, {Event("A").Id(id1), Event("B").Id(id2)});
    ASSERT_TRUE(retry.ok()) << retry.status();
    EXPECT_TRUE(retry->duplicate);
    EXPECT_EQ(retry->first_position, 2u);
    EXPECT_EQ(retry->last_position, 3u);
    EXPECT_EQ(retry->first_version, 0u);
    EXPECT_EQ(retry->last_version, 1u);
    EXPECT_EQ(retry->committed_at, first->committed_at);
  }
  // Upper-case ids are the same ids.
  auto upper = store_->Append("order-7", ExpectedVersion::NoStream(),
                              {Event("A").Id("11111111-1111-4111-8111-111111111111"),
                               Event("B").Id("22222222-2222-4222-8222-222222222222")});
  EXPECT_TRUE(upper.ok() && upper->duplicate);

  ASSERT_TRUE(store_->Append("order-7", ExpectedVersion::Exact(1), {Event("C").Id(id3)}).ok());
  auto retry_exact = store_->Append("order-7", ExpectedVersion::Exact(1), {Event("C").Id(id3)});
  ASSERT_TRUE(retry_exact.ok()) << retry_exact.status();
  EXPECT_TRUE(retry_exact->duplicate);
  EXPECT_EQ(retry_exact->first_version, 2u);
  EXPECT_EQ(Rows(), "4/2");

  // The same id anywhere else is a conflict, not a retry.
  EXPECT_EQ(store_->Append("order-8", ExpectedVersion::Any(), {Event("A").Id(id1)}).status(),
            absl::AlreadyExistsError("events[0].event_id: " + id1 +
                                     " is already stored in stream 'order-7' at version 0"));
  // With `any`, re-sending a stored event to its own stream is a retry.
  auto subset = store_->Append("order-7", ExpectedVersion::Any(), {Event("B").Id(id2)});
  ASSERT_TRUE(subset.ok()) << subset.status();
  EXPECT_TRUE(subset->duplicate);
  EXPECT_EQ(subset->first_version, 1u);
  // Out of order, it is not.
  EXPECT_EQ(store_->Append("order-7", ExpectedVersion::Any(),
                           {Event("B").Id(id2), Event("A").Id(id1)})
                .status()
                .code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->Append("order-7", ExpectedVersion::Exact(2),
                           {Event("N").Id("44444444-4444-4444-8444-444444444444"),
                            Event("C").Id(id3)})
                .status(),
            absl::AlreadyExistsError("events[1].event_id: " + id3 +
                                     " is already stored in stream 'order-7' at version 2"));
  EXPECT_EQ(store_->Append("order-7", ExpectedVersion::Exact(0),
                           {Event("A").Id(id1), Event("B").Id(id2)})
                .status()
                .code(),
            absl::StatusCode::kAlreadyExists);  // Stored, but not where this append puts them.
  EXPECT_EQ(Rows(), "4/2");
  // In one call, logbookd checks only each append's first event id against
  // the stored ones (migrations/0009): the reused id3 after a new id failed
  // the INSERT, after positions 5 and 6 were taken. They are a recorded gap.
  auto next = store_->Append("order-7", ExpectedVersion::Exact(2), {Event("D", "{}")});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->first_position, 7u);
  EXPECT_EQ(QueryValue(dsn_, "SELECT string_agg(first_position || '-' || last_position, ',')"
                             " FROM logbook.position_gaps"),
            "5-6");
  auto verification = store_->StartVerify("");
  ASSERT_TRUE(verification.ok()) << verification.status();
  absl::StatusOr<bool> finished;
  while ((finished = (*verification)->Step(1000)).ok() && !*finished) {
  }
  ASSERT_TRUE(finished.ok()) << finished.status();
  EXPECT_FALSE((*verification)->report().first_broken.has_value());
  EXPECT_EQ((*verification)->report().events_checked, 5u);
}

// Concurrent retries of one append, which the group committer puts into one
// group or several: one of them stores the events, every other one answers
// as a retry with the same versions, positions and commit time.
TEST_F(StoreTest, ConcurrentRetriesOfOneAppendStoreItOnce) {
  const std::vector<NewEvent> events = {Event("A").Id("77777777-7777-4777-8777-777777777777"),
                                        Event("B").Id("88888888-8888-4888-8888-888888888888")};
  constexpr int kThreads = 16;
  std::vector<absl::StatusOr<AppendResult>> results(kThreads, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back(
        [&, t] { results[t] = store_->Append("retried-1", ExpectedVersion::Any(), events); });
  }
  for (auto& th : threads) th.join();
  int stored = 0;
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    stored += r->duplicate ? 0 : 1;
    EXPECT_EQ(r->first_version, 0u);
    EXPECT_EQ(r->last_version, 1u);
    EXPECT_EQ(r->first_position, 1u);
    EXPECT_EQ(r->last_position, 2u);
    EXPECT_EQ(r->committed_at, results[0]->committed_at);
  }
  EXPECT_EQ(stored, 1);
  EXPECT_EQ(Rows(), "2/1");
}

// Invariant 7: bad input gets its code and changes nothing.
TEST_F(StoreTest, BadInputChangesNothing) {
  ASSERT_TRUE(store_->Append("keep-1", ExpectedVersion::Any(), {Event("A")}).ok());
  NewEvent huge = Event("Huge");
  huge.content_type = "application/octet-stream";
  huge.data = std::string((1 << 20) + 1, 'x');
  NewEvent bad_id = Event("A").Id("1234");
  struct Case {
    std::string stream;
    std::vector<NewEvent> events;
    absl::StatusCode code;
  };
  const std::vector<Case> cases = {
      {"", {Event("A")}, absl::StatusCode::kInvalidArgument},
      {std::string(257, 's'), {Event("A")}, absl::StatusCode::kInvalidArgument},
      {"bad\xfe", {Event("A")}, absl::StatusCode::kInvalidArgument},
      {"keep-1", {}, absl::StatusCode::kInvalidArgument},
      {"keep-1", {Event("A"), bad_id}, absl::StatusCode::kInvalidArgument},
      {"keep-1", {Event("A"), Event("B", "{oops")}, absl::StatusCode::kInvalidArgument},
      {"keep-1", {Event("A"), huge}, absl::StatusCode::kResourceExhausted},
      {"keep-1", std::vector<NewEvent>(1001, Event("A")), absl::StatusCode::kResourceExhausted},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(store_->Append(c.stream, ExpectedVersion::Any(), c.events).status().code(), c.code)
        << c.stream.substr(0, 20);
  }
  EXPECT_EQ(store_->Append("keep-1", ExpectedVersion::Exact(uint64_t{1} << 63), {Event("A")})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Rows(), "1/1");
}

TEST_F(StoreTest, ReadsStreamsInBothDirectionsWithBounds) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store_->Append("r-1", ExpectedVersion::Any(),
                               {Event("E", "{\"i\":" + std::to_string(i) + "}")})
                    .ok());
  }
  auto versions = [](const absl::StatusOr<std::vector<RecordedEvent>>& events) {
    std::string out;
    for (const auto& e : *events) out += std::to_string(e.stream_version);
    return out;
  };
  EXPECT_EQ(versions(store_->ReadStream(Stream("r-1"))), "01234");
  EXPECT_EQ(versions(store_->ReadStream(Stream("r-1", 2))), "234");
  EXPECT_EQ(versions(store_->ReadStream(Stream("r-1", 1, Direction::kForward, 2))), "12");
  EXPECT_EQ(versions(store_->ReadStream(Stream("r-1", std::nullopt, Direction::kBackward))), "43210");
  EXPECT_EQ(versions(store_->ReadStream(Stream("r-1", 3, Direction::kBackward, 2))), "32");
  EXPECT_EQ(versions(store_->ReadStream(Stream("r-1", 9))), "");
  EXPECT_EQ(store_->ReadStream(Stream("missing-1")).status(),
            absl::NotFoundError("stream 'missing-1' does not exist"));
  EXPECT_EQ(store_->GetStream("missing-1").status(),
            absl::NotFoundError("stream 'missing-1' does not exist"));
  EXPECT_EQ(store_->ReadStream(Stream("r-1", 0, Direction::kForward, 100001)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(StoreTest, ReadsAllWithFilters) {
  ASSERT_TRUE(store_->Append("order-1", ExpectedVersion::Any(), {Event("Placed")}).ok());
  ASSERT_TRUE(store_->Append("cart-1", ExpectedVersion::Any(), {Event("Added")}).ok());
  ASSERT_TRUE(store_->Append("order-2", ExpectedVersion::Any(), {Event("Placed"), Event("Paid")}).ok());
  ASSERT_TRUE(store_->Append("orderly-1", ExpectedVersion::Any(), {Event("Placed")}).ok());
  ASSERT_TRUE(store_->Append("order", ExpectedVersion::Any(), {Event("Odd")}).ok());
  auto ids = [&](ReadAllQuery q) {
    std::string out;
    auto events = store_->ReadAll(q);
    EXPECT_TRUE(events.ok()) << events.status();
    for (const auto& e : *events) out += std::to_string(e.global_position) + e.stream_id + " ";
    return out;
  };
  EXPECT_EQ(ids(All()), "1order-1 2cart-1 3order-2 4order-2 5orderly-1 6order ");
  EXPECT_EQ(ids(All(3)), "3order-2 4order-2 5orderly-1 6order ");
  EXPECT_EQ(ids(All(std::nullopt, Direction::kBackward, 2)), "6order 5orderly-1 ");
  EXPECT_EQ(ids(All(4, Direction::kBackward, 0)), "4order-2 3order-2 2cart-1 1order-1 ");
  ReadAllQuery category;
  category.filter.category = "order";
  EXPECT_EQ(ids(category), "1order-1 3order-2 4order-2 6order ");
  category.direction = Direction::kBackward;
  category.max_count = 2;
  EXPECT_EQ(ids(category), "6order 4order-2 ");
  ReadAllQuery prefix;
  prefix.filter.stream_prefix = "order-";
  EXPECT_EQ(ids(prefix), "1order-1 3order-2 4order-2 ");
  prefix.filter.stream_prefix = "o%";  // LIKE wildcards are plain characters.
  EXPECT_EQ(ids(prefix), "");
  ReadAllQuery types;
  types.filter.event_types = {"Placed", "Added"};
  EXPECT_EQ(ids(types), "1order-1 2cart-1 3order-2 5orderly-1 ");
  types.filter.category = "order";
  EXPECT_EQ(ids(types), "1order-1 3order-2 ");
}

// EventFilter::scopes (set by logbookd for a caller of several scopes): the
// streams within any one of them, with every other filter still applied.
TEST_F(StoreTest, ReadsAllWithinSeveralScopes) {
  for (const char* stream : {"order-1", "cart-1", "orderly-1", "pay-7", "payments"}) {
    ASSERT_TRUE(store_->Append(stream, ExpectedVersion::Any(), {Event("Placed")}).ok());
  }
  ASSERT_TRUE(store_->Append("cart-2", ExpectedVersion::Any(), {Event("Added")}).ok());
  auto ids = [&](ReadAllQuery q) {
    std::string out;
    auto events = store_->ReadAll(q);
    if (!events.ok()) return events.status().ToString();
    for (const auto& e : *events) out += std::to_string(e.global_position) + e.stream_id + " ";
    return out;
  };
  ReadAllQuery q;
  q.filter.scopes = {"order-*", "cart", "pay*"};
  EXPECT_EQ(ids(q), "1order-1 2cart-1 4pay-7 5payments 6cart-2 ");
  q.direction = Direction::kBackward;
  q.max_count = 2;
  EXPECT_EQ(ids(q), "6cart-2 5payments ");
  q = ReadAllQuery();
  q.filter.scopes = {"order-*", "cart"};
  q.filter.event_types = {"Placed"};
  EXPECT_EQ(ids(q), "1order-1 2cart-1 ");
  q.filter.category = "cart";
  EXPECT_EQ(ids(q), "2cart-1 ");
  q.filter.category.clear();
  q.filter.stream_prefix = "ord";  // "orderly-1" is in no scope.
  EXPECT_EQ(ids(q), "1order-1 ");
  // Live subscribers match the same way.
  EventFilter f;
  f.scopes = {"order-*", "cart"};
  RecordedEvent e;
  for (const char* stream : {"order-1", "cart-9", "orderly-1", "cart", "carts-1"}) {
    e.stream_id = stream;
    EXPECT_EQ(Matches(f, e), e.stream_id == "order-1" || e.stream_id == "cart-9" ||
                                 e.stream_id == "cart")
        << stream;
  }
  q = ReadAllQuery();
  q.filter.scopes = std::vector<std::string>(101, "order-*");
  EXPECT_EQ(ids(q), "INVALID_ARGUMENT: filter.scopes: 101 scopes exceed the limit of 100");
}

TEST_F(StoreTest, ListsStreamsAndCategoriesByPrefixInPagesWithinScopes) {
  for (const char* stream :
       {"order-2", "order-10", "orderly-1", "cart-1", "pay-7", "payments", "order-1"}) {
    ASSERT_TRUE(store_->Append(stream, ExpectedVersion::Any(), {Event("Placed")}).ok());
  }
  ASSERT_TRUE(store_->DeleteStream("pay-7", ExpectedVersion::Any(), false, {"op"}).ok());
  auto streams = [&](ListQuery q) {
    std::string out;
    auto listed = store_->ListStreams(q);
    if (!listed.ok()) return listed.status().ToString();
    for (const StreamInfo& s : *listed) {
      absl::StrAppend(&out, s.stream_id, "@", s.version, "/", s.last_position,
                      s.state == StreamState::kActive ? "" : "(deleted)", " ");
    }
    return out;
  };
  auto categories = [&](ListQuery q) {
    auto listed = store_->ListCategories(q);
    return listed.ok() ? absl::StrJoin(*listed, " ") : listed.status().ToString();
  };
  ListQuery q;
  // Byte order; the soft-deleted stream with its state; $audit has its
  // StreamDeleted event.
  EXPECT_EQ(streams(q),
            "$audit@0/8 cart-1@0/4 order-1@0/7 order-10@0/2 order-2@0/1 orderly-1@0/3 "
            "pay-7@0/5(deleted) payments@0/6 ");
  EXPECT_EQ(categories(q), "$audit cart order orderly pay payments");
  q.prefix = "order";
  EXPECT_EQ(streams(q), "order-1@0/7 order-10@0/2 order-2@0/1 orderly-1@0/3 ");
  EXPECT_EQ(categories(q), "order orderly");
  q.max_count = 2;
  EXPECT_EQ(streams(q), "order-1@0/7 order-10@0/2 ");
  EXPECT_EQ(categories(q), "order orderly");
  q.after = "order-10";
  EXPECT_EQ(streams(q), "order-2@0/1 orderly-1@0/3 ");
  q.after = "orderly-1";
  EXPECT_EQ(streams(q), "");
  q.after = "order";
  EXPECT_EQ(categories(q), "orderly");
  // A scoped caller lists what its scopes reach: "order-*" reaches category
  // "order" only, "pay*" every category starting with "pay".
  q = ListQuery();
  q.scopes = {"order-*", "cart", "pay*"};
  EXPECT_EQ(streams(q),
            "cart-1@0/4 order-1@0/7 order-10@0/2 order-2@0/1 pay-7@0/5(deleted) payments@0/6 ");
  EXPECT_EQ(categories(q), "cart order pay payments");
  q.scopes = {"order-1*"};
  EXPECT_EQ(streams(q), "order-1@0/7 order-10@0/2 ");
  EXPECT_EQ(categories(q), "order");
  q = ListQuery();
  q.max_count = kMaxListCount + 1;
  EXPECT_EQ(streams(q), "INVALID_ARGUMENT: max_count: 10001 is over the limit of 10000");
  q.max_count = 0;
  q.prefix = std::string(257, 'a');
  EXPECT_EQ(categories(q), "INVALID_ARGUMENT: prefix: longer than a stream id may be (256 bytes)");
}

TEST_F(StoreTest, ReadsAllBetweenBoundsAndByExactStreamAndKnowsTheHead) {
  EXPECT_EQ(*store_->HeadPosition(), 0u);
  ASSERT_TRUE(store_->Append("a-1", ExpectedVersion::Any(), {Event("X"), Event("Y")}).ok());
  ASSERT_TRUE(store_->Append("a-10", ExpectedVersion::Any(), {Event("X")}).ok());
  ASSERT_TRUE(store_->Append("a-1", ExpectedVersion::Any(), {Event("Z")}).ok());
  EXPECT_EQ(*store_->HeadPosition(), 4u);
  auto positions = [&](ReadAllQuery q) {
    std::string out;
    auto events = store_->ReadAll(q);
    EXPECT_TRUE(events.ok()) << events.status();
    for (const auto& e : *events) out += std::to_string(e.global_position);
    return out;
  };
  ReadAllQuery q = All(2);
  q.until_position = 3;
  EXPECT_EQ(positions(q), "23");
  q = All(4, Direction::kBackward);
  q.until_position = 2;  // At or below 2 in either direction: newest first from 2.
  EXPECT_EQ(positions(q), "21");
  q = All();
  q.filter.stream_id = "a-1";
  EXPECT_EQ(positions(q), "124");
  q.until_position = 3;
  q.filter.event_types = {"Y", "Z"};
  EXPECT_EQ(positions(q), "2");
  q.filter.stream_id = "bad\xff";
  EXPECT_EQ(store_->ReadAll(q).status().code(), absl::StatusCode::kInvalidArgument);
}

// max_bytes: a read stops after the event whose data + metadata bring the
// total to the bound or past it (so it returns at least one event); only
// the events the read returns count, in its direction.
TEST_F(StoreTest, ReadsStopAfterTheEventThatReachesMaxBytes) {
  auto blob = [](size_t data, size_t metadata = 0) {
    NewEvent e;
    e.type = "Blob";
    e.content_type = "application/octet-stream";
    e.data = std::string(data, 'd');
    e.metadata = std::string(metadata, 'm');
    return e;
  };
  // Positions and bytes: 1 b-1@0 100, 2 c-1@0 1000, 3 b-1@1 200+50,
  // 4 c-1@1 1000, 5 b-1@2 300, 6 b-1@3 400.
  ASSERT_TRUE(store_->Append("b-1", ExpectedVersion::Any(), {blob(100)}).ok());
  ASSERT_TRUE(store_->Append("c-1", ExpectedVersion::Any(), {blob(1000)}).ok());
  ASSERT_TRUE(store_->Append("b-1", ExpectedVersion::Any(), {blob(200, 50)}).ok());
  ASSERT_TRUE(store_->Append("c-1", ExpectedVersion::Any(), {blob(1000)}).ok());
  ASSERT_TRUE(store_->Append("b-1", ExpectedVersion::Any(), {blob(300), blob(400)}).ok());
  // What `q` with `max_bytes` returns: the positions of a ReadAll, the
  // versions of a ReadStream.
  auto read = [&](auto q, size_t max_bytes) {
    constexpr bool kAll = std::is_same_v<decltype(q), ReadAllQuery>;
    q.max_bytes = max_bytes;
    absl::StatusOr<std::vector<RecordedEvent>> events;
    if constexpr (kAll) {
      events = store_->ReadAll(q);
    } else {
      events = store_->ReadStream(q);
    }
    EXPECT_TRUE(events.ok()) << events.status();
    std::string out;
    for (const auto& e : *events) out += std::to_string(kAll ? e.global_position : e.stream_version);
    return out;
  };
  EXPECT_EQ(read(All(), 0), "123456");
  EXPECT_EQ(read(All(), 1), "1");
  EXPECT_EQ(read(All(), 100), "1");
  EXPECT_EQ(read(All(), 101), "12");
  EXPECT_EQ(read(All(), 1100), "12");
  EXPECT_EQ(read(All(), 1101), "123");
  EXPECT_EQ(read(All(2), 1), "2");
  EXPECT_EQ(read(All(std::nullopt, Direction::kForward, 2), 100000), "12");
  EXPECT_EQ(read(All(std::nullopt, Direction::kBackward), 400), "6");
  EXPECT_EQ(read(All(std::nullopt, Direction::kBackward), 401), "65");
  ReadAllQuery category;
  category.filter.category = "b";
  EXPECT_EQ(read(category, 100), "1");
  EXPECT_EQ(read(category, 350), "13");
  EXPECT_EQ(read(category, 351), "135");
  ReadAllQuery stream;
  stream.filter.stream_id = "b-1";
  stream.direction = Direction::kBackward;
  EXPECT_EQ(read(stream, 700), "65");
  EXPECT_EQ(read(stream, 701), "653");
  ReadAllQuery types = All(2);
  types.filter.event_types = {"Blob"};
  EXPECT_EQ(read(types, 1250), "23");

  EXPECT_EQ(read(Stream("b-1"), 0), "0123");
  EXPECT_EQ(read(Stream("b-1"), 1), "0");
  EXPECT_EQ(read(Stream("b-1"), 100), "0");
  EXPECT_EQ(read(Stream("b-1"), 101), "01");
  EXPECT_EQ(read(Stream("b-1"), 350), "01");
  EXPECT_EQ(read(Stream("b-1"), 351), "012");
  EXPECT_EQ(read(Stream("b-1", 1), 250), "1");
  EXPECT_EQ(read(Stream("b-1", 0, Direction::kForward, 2), 100000), "01");
  EXPECT_EQ(read(Stream("b-1", std::nullopt, Direction::kBackward), 700), "32");
  EXPECT_EQ(read(Stream("b-1", std::nullopt, Direction::kBackward), 701), "321");
  EXPECT_EQ(read(Stream("c-1"), 1), "0");
}

TEST_F(StoreTest, TextFieldsWithQuotesAndBackslashesSurviveArrayEncoding) {
  NewEvent e = Event("Type \"quoted\" \\ {x,y}");
  e.correlation_id = "a\\\"b";
  e.content_type = "text/plain; q=\"1\"";
  e.data = "not json";
  ASSERT_TRUE(store_->Append("quote-1", ExpectedVersion::Any(), {e}).ok());
  auto events = store_->ReadStream(Stream("quote-1"));
  ASSERT_TRUE(events.ok());
  EXPECT_EQ((*events)[0].type, e.type);
  EXPECT_EQ((*events)[0].correlation_id, e.correlation_id);
  EXPECT_EQ((*events)[0].content_type, e.content_type);
}

TEST_F(StoreTest, WorksAsTheLeastPrivilegedApplicationRole) {
  const std::string database = dsn_.substr(dsn_.rfind('/') + 1);
  StoreOptions options;
  options.dsn = testing::DsnFor(database, "logbook_app");
  auto app_store = EventStore::Open(options);
  ASSERT_TRUE(app_store.ok()) << app_store.status();
  auto appended = (*app_store)->Append("app-1", ExpectedVersion::NoStream(), {Event("A")});
  ASSERT_TRUE(appended.ok()) << appended.status();
  auto read = (*app_store)->ReadAll(All());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->size(), 1u);
}

TEST(StoreOpen, UnreachableDatabaseIsUnavailable) {
  StoreOptions options;
  options.dsn = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2";
  EXPECT_EQ(EventStore::Open(options).status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace logbook::store
