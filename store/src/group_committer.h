// Group commit: concurrent appends share one transaction and one WAL flush.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <pqxx/connection>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace logbook::store {

// The arguments of one logbook.append_events() call, already encoded.
struct AppendCall {
  std::string stream_id;
  int64_t expected = -1;  // -1 any, -2 no stream, -3 stream exists, >= 0 exact.
  std::string event_ids, types, content_types, correlation_ids, causation_ids;  // Array literals.
  std::string payload;                      // data and metadata, concatenated.
  std::string data_sizes, metadata_sizes;   // Array literals.
};

// Its result row (see the function's comment in migrations/0001_initial.sql).
struct AppendRow {
  std::string outcome;
  std::optional<int64_t> actual_version;
  uint64_t first_version = 0, last_version = 0, first_position = 0, last_position = 0;
  int64_t committed_at_micros = 0;
  std::string conflicting_event_id, conflicting_stream_id;
  int64_t conflicting_version = 0;
};

// Runs appends on one dedicated connection: whatever is waiting when the
// previous transaction ends goes into the next one, each append its own
// append_events() call with its own outcome (a call whose outcome is not 'ok'
// changes nothing), then one COMMIT; only then are the callers answered.
// Appends already serialize on logbook.log_head, so sharing the transaction
// costs no concurrency and saves a WAL flush per append.
//
// If a shared transaction fails (an unexpected error, or the connection
// broke, even during COMMIT), each of its appends is run again on its own:
// append_events recognizes event ids that did commit and returns their
// positions, so this is safe and isolates a failing append from the others.
//
// Thread-safe. Commit() blocks its caller until the append is durable or has
// failed. The destructor finishes the appends already queued.
class GroupCommitter {
 public:
  GroupCommitter(std::string dsn, size_t max_batch_appends, size_t max_batch_bytes);
  ~GroupCommitter();

  // UNAVAILABLE: the database could not be reached (nothing was stored).
  // UNKNOWN: the connection broke and stayed broken after the append was
  // sent; it may or may not be stored. Other codes as StatusFromException.
  absl::StatusOr<AppendRow> Commit(AppendCall call);

 private:
  struct Pending {
    AppendCall call;
    absl::StatusOr<AppendRow> result;
    bool done = false;
  };

  void Loop();
  void RunBatch(const std::vector<Pending*>& batch);
  absl::StatusOr<AppendRow> RunAlone(const AppendCall& call);
  // Opens the connection if there is none; false if it cannot.
  absl::Status Connect();

  const std::string dsn_;
  const size_t max_batch_appends_;
  const size_t max_batch_bytes_;
  std::unique_ptr<pqxx::connection> conn_;  // Used by the loop thread only.

  absl::Mutex mu_;
  std::deque<Pending*> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // Last: starts once the rest exists.
};

}  // namespace logbook::store
