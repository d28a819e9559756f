// Group commit: concurrent appends share transactions, and several
// transactions write at once.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "append_writer.h"
#include "logbook/store/observer.h"

namespace logbook::store {

// The database side of one writer of the committer: one connection, used by
// one writer thread at a time. PgGroupWriter (NewPgGroupWriter) is the real
// one; tests wrap it to inject faults. Every method but connected() and
// Disconnect() throws what libpqxx throws.
class GroupWriter {
 public:
  virtual ~GroupWriter() = default;
  // Opens the connection (and prepares its statements) unless it is open,
  // and makes `tenant` its session's tenant (the group's: every append of a
  // group is one tenant's).
  virtual void Connect(const std::string& tenant) = 0;
  virtual bool connected() const = 0;
  // Drops the connection, if any.
  virtual void Disconnect() = 0;
  // AppendWithKnownHeads (append_writer.h) on the connection, in autocommit.
  virtual std::optional<GroupOutcome> AppendWithKnownHeads(
      const std::vector<const AppendInput*>& appends, std::map<std::string, StreamHead> heads,
      int64_t recorded_at_micros) = 0;
  // AppendLoadingHeads in a transaction of its own, committed when it
  // returns a value, rolled back otherwise.
  virtual std::optional<GroupOutcome> AppendInTransaction(
      const std::vector<const AppendInput*>& appends, int64_t not_before_micros) = 0;
};

// A GroupWriter on a connection to `dsn`, opened by the first Connect().
std::unique_ptr<GroupWriter> NewPgGroupWriter(std::string dsn);

// Runs appends on `writers` GroupWriters, one thread each. A free writer
// takes everything waiting (up to the batch limits) and writes it as one
// group, in one transaction (each append keeps its own outcome); only then
// are its callers answered. So N concurrent appends cost a few transactions
// and WAL flushes instead of N.
//
// A group holds the appends of one tenant (PostgreSQL's row-level security
// scopes its writer's session to it); appends of other tenants wait for the
// next group, which the other writers take at once.
//
// A group goes to the database in one autocommit call when the head cache
// knows all of its streams (AppendWithKnownHeads), else, or when that call
// finds the database moved on, in a transaction that loads them first
// (AppendInTransaction). Groups running at the same time never share a
// stream, so each is decided against heads no running group moves.
//
// A writer starts a transaction while another is still running only for at
// least kParallelEvents waiting events: then the two insert in parallel (the
// database still publishes them in position order). Fewer wait for the
// running one to finish and share the next transaction, which costs less
// than a transaction and a WAL flush of their own.
//
// When the last group had at least kWaitForReturningCallers appends, the
// next one waits up to 1 ms for as many: closed-loop callers come straight
// back, and sharing a transaction instead of trailing it raises throughput.
// (Below that, as with paced or few callers, waiting would only add
// latency.)
//
// If a group fails (an unexpected error, a concurrent writer storing the
// same event id first, or the connection broke, even during COMMIT), the
// failure is logged and each of its appends is run again alone:
// AppendLoadingHeads recognizes event ids that did commit and returns their
// positions, so this is safe and isolates a failing append from the others.
// Each append's `done` runs exactly once, whatever happens.
//
// Thread-safe. Submit() returns at once; `done` runs on a writer thread once
// the append is durable or has failed, so it must not block. The destructor
// finishes the appends already queued.
class GroupCommitter {
 public:
  using WriterFactory = std::function<std::unique_ptr<GroupWriter>()>;
  // `observer` (may be null) is told of every group and must outlive this.
  GroupCommitter(const WriterFactory& make_writer, size_t writers, size_t max_batch_appends,
                 size_t max_batch_bytes, StoreObserver* observer = nullptr);
  ~GroupCommitter();

  // UNAVAILABLE: the database could not be reached (nothing was stored).
  // UNKNOWN: the connection broke and stayed broken after the append was
  // sent, alone or in its group; it may or may not be stored (a retry with
  // the same event ids is safe). ABORTED: it lost a race with
  // concurrent writers of the same event ids or stream more than
  // kRaceRetries times. Other codes as StatusFromException and PlanAppends.
  using Done = std::function<void(absl::StatusOr<AppendResult>)>;
  void Submit(AppendInput append, Done done);

 private:
  struct Pending {
    AppendInput append;
    Done done;
    absl::Time queued_at;
    absl::StatusOr<AppendResult> result = absl::UnknownError("not run");
  };
  // Appends sharing a group.
  struct Batch {
    std::string tenant;  // Every append's.
    std::vector<std::unique_ptr<Pending>> appends;
    std::vector<std::string> streams;  // Distinct, marked running (StreamKey).
    // Every stream's head from the cache, when it knows them all.
    std::optional<std::map<std::string, StreamHead>> heads;
    int64_t recorded_at_micros = 0;  // Never before any this process used.
  };

  void WriterLoop(GroupWriter& writer);
  // Waits for appends and takes the next batch, counting it as running;
  // empty once stopping and drained.
  Batch TakeBatch();
  // Runs `batch`, setting each append's result; returns the heads of its
  // streams afterwards, or nullopt when they are unknown (after an error).
  std::optional<std::map<std::string, StreamHead>> RunBatch(GroupWriter& writer, Batch& batch);
  // Runs `append` in a transaction of its own. `in_doubt`: it was already
  // sent in a group whose commit's outcome is unknown, so when the database
  // cannot be reached now the answer is UNKNOWN, not UNAVAILABLE.
  absl::StatusOr<AppendResult> RunAlone(GroupWriter& writer, const AppendInput& append,
                                        int64_t not_before_micros, bool in_doubt);

  const size_t max_batch_appends_;
  const size_t max_batch_bytes_;
  StoreObserver* const observer_;
  static constexpr size_t kWaitForReturningCallers = 16;
  static constexpr absl::Duration kMaxWait = absl::Milliseconds(1);
  static constexpr int kRaceRetries = 3;  // Tries of an append that lost a race.
  static constexpr size_t kParallelEvents = 64;

  absl::Mutex mu_;
  std::deque<std::unique_ptr<Pending>> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_events_ ABSL_GUARDED_BY(mu_) = 0;
  size_t running_ ABSL_GUARDED_BY(mu_) = 0;     // Groups being written.
  uint64_t finished_ ABSL_GUARDED_BY(mu_) = 0;  // Groups finished so far.
  std::set<std::string> running_streams_ ABSL_GUARDED_BY(mu_);  // StreamKeys.
  size_t last_batch_ ABSL_GUARDED_BY(mu_) = 0;  // Appends in the last one started.
  HeadCache cache_ ABSL_GUARDED_BY(mu_);  // By StreamKey.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::vector<std::unique_ptr<GroupWriter>> writers_;
  std::vector<std::thread> threads_;  // Last: start once the rest exists.
};

}  // namespace logbook::store
