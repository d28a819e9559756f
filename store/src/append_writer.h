// The write path: a group of appends in one transaction, one set-based
// statement for all of their events, receipts and stream heads.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <pqxx/connection>
#include <pqxx/transaction_base>

#include "absl/status/statusor.h"
#include "logbook/store/types.h"

namespace logbook::store {

// One append, validated (ValidateAppend: event ids canonical, sizes checked).
struct AppendInput {
  std::string stream_id;
  ExpectedVersion expected;
  std::vector<NewEvent> events;
  size_t bytes = 0;  // Data + metadata of all events.
};

// A stream's row as the writer sees it.
struct StreamRow {
  bool exists = false;
  uint64_t version = 0;
  uint64_t last_position = 0;
  std::string head_hash;  // 32 bytes.
  StreamState state = StreamState::kActive;
  uint64_t first_version = 0;
  std::optional<uint64_t> snapshot_version;  // Newest snapshot's, if any.
};

// Prepares the statements below on `conn` (done on every new connection).
void PrepareWriteStatements(pqxx::connection& conn);

// Locks logbook.log_head for the rest of `tx`: every writer takes this lock
// first, so transactions that write events commit one after another and
// positions become visible strictly in order. Idempotent within `tx`.
void LockHead(pqxx::transaction_base& tx);

// The rows of `stream_ids` (missing ones have exists = false).
std::vector<StreamRow> LoadStreams(pqxx::transaction_base& tx,
                                   const std::vector<std::string>& stream_ids);

// Stream heads as this process last wrote or loaded them: a guess that lets
// a group go to the database in one autocommit round trip, which
// logbook.append_prepared checks under the head lock. Bounded (cleared when
// full). Not thread-safe: one user at a time (the group committer).
struct HeadCache {
  static constexpr size_t kMaxStreams = 100000;
  std::unordered_map<std::string, StreamRow> streams;
  int64_t last_recorded_at_micros = 0;  // recorded_at never goes below this.
  void Remember(const std::map<std::string, StreamRow>& rows, int64_t recorded_at_micros);
};

// Appends each of `appends` in `tx`, in order: takes the head lock and loads
// the streams and stored event ids (logbook.lock_for_append), decides every
// outcome, hashes the receipts, and writes the accepted appends in one call
// (logbook.append_prepared). Each append gets its own outcome; one that is
// not OK writes nothing, so its neighbours are unaffected:
//   ABORTED             wrong expected version (payload kActualVersionPayload
//                       when the stream exists)
//   ALREADY_EXISTS      an event id is stored elsewhere
//   FAILED_PRECONDITION the stream is tombstoned
// An append whose event ids are all stored at exactly the versions it would
// give them is OK again with the original positions (an idempotent retry).
// Refreshes `cache` if given. Throws what libpqxx throws; the caller
// translates (pg_errors.h) and must then roll `tx` back.
std::vector<absl::StatusOr<AppendResult>> WriteAppends(
    pqxx::transaction_base& tx, const std::vector<const AppendInput*>& appends,
    HeadCache* cache = nullptr);

// The same in one autocommit round trip, when `cache` knows every stream of
// the group and every append would be accepted. Returns nullopt, having
// written nothing, when it cannot tell or the database has moved on (another
// writer, a deletion, a stored event id): then use WriteAppends. Throws what
// libpqxx throws.
std::optional<std::vector<absl::StatusOr<AppendResult>>> TryWriteAppendsFromCache(
    pqxx::connection& conn, const std::vector<const AppendInput*>& appends, HeadCache& cache);

// "version 3", "no stream", ...: for messages.
std::string Describe(ExpectedVersion expected);

}  // namespace logbook::store
