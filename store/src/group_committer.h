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

#include <pqxx/connection>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "append_writer.h"

namespace logbook::store {

// Runs appends on `writers` dedicated connections, one thread each. A free
// writer takes everything waiting (up to the batch limits) into one
// transaction, written by one WriteAppends call (each append keeps its own
// outcome), then one COMMIT; only then are its callers answered. So N
// concurrent appends cost a few transactions and WAL flushes instead of N.
//
// A group goes to the database in one autocommit call when the head cache
// knows all of its streams (TryWriteAppendsFromCache), else in a transaction
// that loads them (WriteAppends). Groups running at the same time never
// share a stream, so each is decided against heads no running group moves.
//
// A writer starts a transaction while another is still running only for at
// least kParallelEvents waiting events: then the two insert in parallel (the
// database still commits them in position order, append_writer.h). Fewer
// wait for the running one to finish and share the next transaction, which
// costs less than a transaction and a WAL flush of their own.
//
// When the last transaction had at least kWaitForReturningCallers appends,
// the next one waits up to 1 ms for as many: closed-loop callers come
// straight back, and sharing a transaction instead of trailing it raises
// throughput. (Below that, as with paced or few callers, waiting would only
// add latency.)
//
// If a shared transaction fails (an unexpected error, a concurrent writer
// storing the same event id first, or the connection broke, even during
// COMMIT), each of its appends is run again on its own: WriteAppends
// recognizes event ids that did commit and returns their positions, so this
// is safe and isolates a failing append from the others.
//
// Thread-safe. Submit() returns at once; `done` runs on a writer thread once
// the append is durable or has failed, so it must not block. The destructor
// finishes the appends already queued.
class GroupCommitter {
 public:
  GroupCommitter(std::string dsn, size_t writers, size_t max_batch_appends,
                 size_t max_batch_bytes);
  ~GroupCommitter();

  // UNAVAILABLE: the database could not be reached (nothing was stored).
  // UNKNOWN: the connection broke and stayed broken after the append was
  // sent; it may or may not be stored. Other codes as StatusFromException.
  using Done = std::function<void(absl::StatusOr<AppendResult>)>;
  void Submit(AppendInput append, Done done);

 private:
  struct Pending {
    AppendInput append;
    Done done;
    absl::StatusOr<AppendResult> result = absl::UnknownError("not run");
  };
  // One writer's connection; used by its thread only.
  struct Writer {
    std::unique_ptr<pqxx::connection> conn;
  };
  // Appends sharing a transaction.
  struct Batch {
    std::vector<std::unique_ptr<Pending>> appends;
    std::vector<std::string> streams;  // Distinct, marked running.
    // Every stream's head from the cache, when it knows them all.
    std::optional<std::map<std::string, StreamRow>> heads;
    int64_t recorded_at_micros = 0;  // For the one-call path.
  };

  void WriterLoop(Writer& writer);
  // Waits for appends and takes the next batch, counting it as running;
  // empty once stopping and drained.
  Batch TakeBatch();
  // Runs `batch`, setting each append's result; returns the rows of its
  // streams afterwards, or nullopt when they are unknown (after an error).
  std::optional<std::map<std::string, StreamRow>> RunBatch(Writer& writer, Batch& batch);
  absl::StatusOr<AppendResult> RunAlone(Writer& writer, const AppendInput& append);
  // Opens the writer's connection if it has none.
  absl::Status Connect(Writer& writer);

  const std::string dsn_;
  const size_t max_batch_appends_;
  const size_t max_batch_bytes_;
  static constexpr size_t kWaitForReturningCallers = 16;
  static constexpr absl::Duration kMaxWait = absl::Milliseconds(1);
  static constexpr int kRaceRetries = 3;  // Tries of an append that lost a race.
  static constexpr size_t kParallelEvents = 64;

  absl::Mutex mu_;
  std::deque<std::unique_ptr<Pending>> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_events_ ABSL_GUARDED_BY(mu_) = 0;
  size_t running_ ABSL_GUARDED_BY(mu_) = 0;     // Transactions being written.
  uint64_t finished_ ABSL_GUARDED_BY(mu_) = 0;  // Transactions finished so far.
  std::set<std::string> running_streams_ ABSL_GUARDED_BY(mu_);
  size_t last_batch_ ABSL_GUARDED_BY(mu_) = 0;  // Appends in the last one started.
  HeadCache cache_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::vector<Writer> writers_;
  std::vector<std::thread> threads_;  // Last: start once the rest exists.
};

}  // namespace logbook::store
