// Group commit: concurrent appends share one transaction and one WAL flush.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <pqxx/connection>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "append_writer.h"

namespace logbook::store {

// Runs appends on one dedicated connection: whatever is waiting when the
// previous transaction ends goes into the next one, written by one
// WriteAppends call (each append keeps its own outcome), then one COMMIT;
// only then are the callers answered. Appends already serialize on
// logbook.log_head, so sharing the transaction costs no concurrency and
// saves a WAL flush and several round trips per append.
//
// Callers of a large transaction are answered from a second thread, so the
// next transaction starts while they are; those of a small one (up to
// kAnswerInline) at once, a thread hop sooner. When the last transaction had at least
// kWaitForReturningCallers appends, the next one waits up to 1 ms for as
// many: closed-loop callers come straight back, and sharing the next
// transaction instead of trailing it doubles throughput. (Below that, as
// with paced or few callers, waiting would only add latency.)
//
// If a shared transaction fails (an unexpected error, or the connection
// broke, even during COMMIT), each of its appends is run again on its own:
// WriteAppends recognizes event ids that did commit and returns their
// positions, so this is safe and isolates a failing append from the others.
//
// Thread-safe. Submit() returns at once; `done` runs on the committer's
// thread once the append is durable or has failed, so it must not block.
// The destructor finishes the appends already queued.
class GroupCommitter {
 public:
  GroupCommitter(std::string dsn, size_t max_batch_appends, size_t max_batch_bytes);
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

  void Loop();
  void AnswerLoop();
  void RunBatch(const std::vector<std::unique_ptr<Pending>>& batch);
  // One try of `appends` in one shared transaction: from the cache in one
  // round trip when it can, else under the head lock. Throws what libpqxx
  // throws.
  std::vector<absl::StatusOr<AppendResult>> Write(const std::vector<const AppendInput*>& appends);
  absl::StatusOr<AppendResult> RunAlone(const AppendInput& append);
  // Opens the connection if there is none; false if it cannot.
  absl::Status Connect();

  const std::string dsn_;
  const size_t max_batch_appends_;
  const size_t max_batch_bytes_;
  std::unique_ptr<pqxx::connection> conn_;  // Used by the loop thread only.
  HeadCache cache_;                          // Used by the loop thread only.

  absl::Mutex mu_;
  std::deque<std::unique_ptr<Pending>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  size_t last_batch_ ABSL_GUARDED_BY(mu_) = 0;  // Appends in the previous transaction.
  static constexpr size_t kWaitForReturningCallers = 16;
  static constexpr size_t kAnswerInline = 4;
  static constexpr absl::Duration kMaxWait = absl::Milliseconds(1);
  // Finished appends whose callers are still to be answered, in order.
  std::deque<std::unique_ptr<Pending>> answers_ ABSL_GUARDED_BY(mu_);
  bool committer_done_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;           // Last: start once the rest exists.
  std::thread answer_thread_;
};

}  // namespace logbook::store
