// The group committer against a real PostgreSQL with injected faults: a
// group that fails answers each of its callers exactly once, with what the
// database really holds.
#include "group_committer.h"

#include <gtest/gtest.h>

#include <pqxx/except>
#include <sstream>

#include "absl/synchronization/notification.h"
#include "events.h"
#include "fault_injection.h"
#include "logbook/store/uuid.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "test_env.h"

namespace logbook::store {
namespace {

using testing::CreateMigratedDatabase;
using testing::Event;
using testing::FaultInjectingGroupWriter;
using testing::QueryValue;
using testing::WriterFault;

AppendInput OneEvent(const std::string& stream, std::string id = NewUuid()) {
  return PrepareAppend(stream, ExpectedVersion::Any(), {Event("Tick").Id(std::move(id))},
                       Writer{});
}

// Every callback of the appends submitted, counted.
struct Answers {
  absl::Mutex mu;
  std::vector<int> calls ABSL_GUARDED_BY(mu);
  std::vector<absl::StatusOr<AppendResult>> results ABSL_GUARDED_BY(mu);

  explicit Answers(size_t n) : calls(n, 0), results(n, absl::UnknownError("unanswered")) {}
  GroupCommitter::Done For(size_t i) {
    return [this, i](absl::StatusOr<AppendResult> r) {
      absl::MutexLock lock(&mu);
      ++calls[i];
      results[i] = std::move(r);
    };
  }
  // Waits until each has been answered at least once.
  void Wait() {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](std::vector<int>* c) {
          return std::all_of(c->begin(), c->end(), [](int n) { return n > 0; });
        },
        &calls));
  }
};

class GroupCommitterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = CreateMigratedDatabase();
    sink_ = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_);
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  void TearDown() override {
    committer_.reset();
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }

  // A committer with one writer, whose faults the test controls.
  void StartCommitter() {
    committer_ = std::make_unique<GroupCommitter>(
        [this] {
          auto writer = std::make_unique<FaultInjectingGroupWriter>(NewPgGroupWriter(dsn_));
          writer_ = writer.get();
          return writer;
        },
        1, 500, 16 << 20);
  }

  // Submits `appends` as one group: the writer is held in an append of
  // `first` (answered in `held`) while they queue behind it.
  void SubmitAsOneGroup(const AppendInput& first, std::vector<AppendInput> appends,
                        Answers& answers, Answers& held) {
    writer_->HoldNextAppend();
    committer_->Submit(first, held.For(0));
    while (writer_->append_calls() == 0) absl::SleepFor(absl::Milliseconds(1));
    for (size_t i = 0; i < appends.size(); ++i) {
      committer_->Submit(std::move(appends[i]), answers.For(i));
    }
    writer_->Release();
    held.Wait();
    answers.Wait();
    committer_.reset();  // Finishes the queue: any second answer would come now.
  }

  std::string dsn_;
  std::ostringstream log_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
  std::unique_ptr<GroupCommitter> committer_;
  FaultInjectingGroupWriter* writer_ = nullptr;
};

// An unexpected error in a group's call: it is logged, each append runs
// alone, and every caller gets its own outcome once.
TEST_F(GroupCommitterTest, AFailedGroupAnswersEachCallerOnce) {
  StartCommitter();
  Answers answers(10), held(1);
  std::vector<AppendInput> appends;
  for (int i = 0; i < 10; ++i) appends.push_back(OneEvent("g-" + std::to_string(i)));
  writer_->FailAppends(
      1, WriterFault::kBefore,
      [] { throw pqxx::sql_error("injected: internal error", "SELECT", "XX000"); },
      [](const std::vector<std::string>& streams) { return streams.size() == 10; });
  SubmitAsOneGroup(OneEvent("first-1"), std::move(appends), answers, held);

  absl::MutexLock lock(&answers.mu);
  std::set<uint64_t> positions;
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(answers.calls[i], 1) << i;
    ASSERT_TRUE(answers.results[i].ok()) << answers.results[i].status();
    EXPECT_FALSE(answers.results[i]->duplicate);
    positions.insert(answers.results[i]->first_position);
  }
  EXPECT_EQ(positions, (std::set<uint64_t>{2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_NE(log_.str().find("append a group of 10: database error (SQLSTATE XX000); running "
                            "each append alone"),
            std::string::npos)
      << log_.str();
  EXPECT_EQ(QueryValue(dsn_, "SELECT count(*) || '/' || max(global_position) "
                             "FROM logbook.event_log"),
            "11/11");
  EXPECT_EQ(QueryValue(dsn_, "SELECT ok FROM logbook.verify_all()"), "t");
}

// The connection breaks after the group committed (as during COMMIT): run
// alone, each append finds its events stored and gets their positions, as
// an idempotent retry; nothing is stored twice.
TEST_F(GroupCommitterTest, AGroupWhoseCommitWasLostIsAnsweredWithWhatWasStored) {
  StartCommitter();
  Answers answers(5), held(1);
  std::vector<AppendInput> appends;
  for (int i = 0; i < 5; ++i) appends.push_back(OneEvent("lost-" + std::to_string(i)));
  writer_->FailAppends(
      1, WriterFault::kAfter, [] { throw pqxx::broken_connection("injected: connection lost"); },
      [](const std::vector<std::string>& streams) { return streams.size() == 5; });
  SubmitAsOneGroup(OneEvent("first-1"), std::move(appends), answers, held);

  absl::MutexLock lock(&answers.mu);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(answers.calls[i], 1) << i;
    ASSERT_TRUE(answers.results[i].ok()) << answers.results[i].status();
    EXPECT_TRUE(answers.results[i]->duplicate) << i;
    EXPECT_EQ(answers.results[i]->first_position, i + 2);
  }
  EXPECT_EQ(QueryValue(dsn_, "SELECT count(*) FROM logbook.event_log"), "6");
  EXPECT_NE(log_.str().find("append a group of 5: database unavailable: injected: connection "
                            "lost; running each append alone"),
            std::string::npos)
      << log_.str();
}

// One append keeps failing when run alone: its caller gets the error, the
// others of its group are stored and answered.
TEST_F(GroupCommitterTest, OneFailingAppendDoesNotFailItsGroup) {
  StartCommitter();
  Answers answers(4), held(1);
  std::vector<AppendInput> appends;
  for (int i = 0; i < 4; ++i) {
    appends.push_back(OneEvent(i == 2 ? "bad-1" : "ok-" + std::to_string(i)));
  }
  writer_->FailAppends(
      100, WriterFault::kBefore,
      [] { throw pqxx::sql_error("injected: check failed", "SELECT", "XX001"); },
      [](const std::vector<std::string>& streams) {
        return std::find(streams.begin(), streams.end(), "bad-1") != streams.end();
      });
  SubmitAsOneGroup(OneEvent("first-1"), std::move(appends), answers, held);

  absl::MutexLock lock(&answers.mu);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(answers.calls[i], 1) << i;
  EXPECT_EQ(answers.results[2].status(),
            absl::InternalError("append to stream 'bad-1': database error (SQLSTATE XX001)"));
  for (size_t i : {0, 1, 3}) EXPECT_TRUE(answers.results[i].ok()) << answers.results[i].status();
  EXPECT_EQ(QueryValue(dsn_, "SELECT string_agg(stream_id, ',' ORDER BY global_position) "
                             "FROM logbook.event_log"),
            "first-1,ok-0,ok-1,ok-3");
}

// The connection breaks as the group commits (it did commit) and then
// cannot be opened again: the outcome is unknown, so every caller gets
// UNKNOWN, never UNAVAILABLE ("nothing stored"); a retry with the same ids
// finds the events and returns their positions.
TEST_F(GroupCommitterTest, AGroupLostDuringCommitIsUnknownWhileTheDatabaseIsUnreachable) {
  StartCommitter();
  Answers answers(4), held(1);
  std::vector<AppendInput> appends, retries;
  for (int i = 0; i < 4; ++i) {
    const std::string id = NewUuid();
    appends.push_back(OneEvent("doubt-" + std::to_string(i), id));
    retries.push_back(OneEvent("doubt-" + std::to_string(i), id));
  }
  FaultInjectingGroupWriter* writer = writer_;
  writer_->FailAppends(
      1, WriterFault::kAfter,
      [writer] {
        writer->FailConnects(true);
        throw pqxx::broken_connection("injected: connection lost during COMMIT");
      },
      [](const std::vector<std::string>& streams) { return streams.size() == 4; });
  // The writer is still connected after the fault: make it reconnect.
  writer_->DisconnectOnFailure(true);
  SubmitAsOneGroup(OneEvent("first-1"), std::move(appends), answers, held);
  {
    absl::MutexLock lock(&answers.mu);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(answers.calls[i], 1) << i;
      EXPECT_EQ(answers.results[i].status().code(), absl::StatusCode::kUnknown)
          << answers.results[i].status();
      EXPECT_NE(answers.results[i].status().message().find(
                    "the append may or may not be stored (retrying with the same event ids is "
                    "safe)"),
                absl::string_view::npos)
          << answers.results[i].status();
    }
  }
  EXPECT_EQ(QueryValue(dsn_, "SELECT count(*) FROM logbook.event_log"), "5");

  StartCommitter();
  Answers again(4);
  for (size_t i = 0; i < 4; ++i) committer_->Submit(std::move(retries[i]), again.For(i));
  again.Wait();
  absl::MutexLock lock(&again.mu);
  for (size_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(again.results[i].ok()) << again.results[i].status();
    EXPECT_TRUE(again.results[i]->duplicate);
    EXPECT_EQ(again.results[i]->first_position, i + 2);
  }
}

// The database cannot be reached: every caller gets UNAVAILABLE once, and
// the committer writes again as soon as it can.
TEST_F(GroupCommitterTest, AnUnreachableDatabaseIsUnavailableToEachCaller) {
  StartCommitter();
  writer_->FailConnects(true);
  Answers answers(3);
  for (size_t i = 0; i < 3; ++i) {
    committer_->Submit(OneEvent("u-" + std::to_string(i)), answers.For(i));
  }
  answers.Wait();
  {
    absl::MutexLock lock(&answers.mu);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(answers.calls[i], 1);
      EXPECT_EQ(answers.results[i].status().code(), absl::StatusCode::kUnavailable)
          << answers.results[i].status();
      EXPECT_NE(answers.results[i].status().message().find("injected: could not connect"),
                absl::string_view::npos);
    }
  }
  writer_->FailConnects(false);
  Answers after(1);
  committer_->Submit(OneEvent("u-0"), after.For(0));
  after.Wait();
  absl::MutexLock lock(&after.mu);
  ASSERT_TRUE(after.results[0].ok()) << after.results[0].status();
  EXPECT_EQ(after.results[0]->first_position, 1u);
}

}  // namespace
}  // namespace logbook::store
