// The write path: a group of appends in one transaction, one set-based
// statement for all of their events, receipts and stream heads. Writers of
// different streams insert concurrently and commit in position order
// (migrations/0005_concurrent_appends.sql).
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
  // Per event: its id's 16 bytes, then SHA-256 of its data and of its
  // metadata (PrepareAppend), so the committer only chains the receipts.
  std::string id_and_digests = {};
};

// An AppendInput for validated `events`: sums the sizes and hashes the
// payloads. Pure; run it on the caller's thread.
AppendInput PrepareAppend(std::string stream_id, ExpectedVersion expected,
                          std::vector<NewEvent> events);

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

// Prepares the statements below on `conn` and notes its database's OID of
// logbook.new_event (done on every new connection, before it writes; throws
// what libpqxx throws, also when the schema predates migration 0009).
void PrepareWriteStatements(pqxx::connection& conn);

// The rows of `stream_ids` (missing ones have exists = false), locked until
// `tx` ends: appends to these streams wait for it.
std::vector<StreamRow> LockStreams(pqxx::transaction_base& tx,
                                   const std::vector<std::string>& stream_ids);

// What a group of appends did: each append's outcome, and the rows of its
// streams afterwards (for HeadCache).
struct GroupOutcome {
  std::vector<absl::StatusOr<AppendResult>> results;
  std::map<std::string, StreamRow> streams;
};

// Appends each of `appends` in `tx`, in order: locks their streams and loads
// the stored event ids among theirs (logbook.load_for_append), decides every
// outcome, takes positions for the accepted events (logbook.take_ticket),
// hashes their receipts, and writes and publishes them in one call
// (logbook.write_appends), which returns once every transaction with
// earlier positions has ended. The caller then commits. Each append gets its
// own outcome; one that is not OK writes nothing, so its neighbours are
// unaffected:
//   ABORTED             wrong expected version (payload kActualVersionPayload
//                       when the stream exists)
//   ALREADY_EXISTS      an event id is stored elsewhere
//   FAILED_PRECONDITION the stream is tombstoned
// An append whose event ids are all stored at exactly the versions it would
// give them is OK again with the original positions (an idempotent retry).
// Throws what libpqxx throws (also when a concurrent transaction stored one
// of the event ids first); the caller translates (pg_errors.h) and must then
// roll `tx` back.
GroupOutcome WriteAppends(pqxx::transaction_base& tx,
                          const std::vector<const AppendInput*>& appends);

// Stream heads as this process last wrote or loaded them: a guess that lets
// a group go to the database in one autocommit call (TryWriteAppendsFromCache),
// which logbook.append_cached checks under the streams' locks. Bounded
// (cleared when full). Not thread-safe.
struct HeadCache {
  static constexpr size_t kMaxStreams = 100000;
  std::unordered_map<std::string, StreamRow> streams;
  int64_t last_recorded_at_micros = 0;  // The latest recorded_at this process used.
  void Remember(const std::map<std::string, StreamRow>& rows);
};

// The group in one autocommit round trip, decided against `heads` (every
// stream of the group, as HeadCache knows it) with recorded_at
// `recorded_at_micros`, when every append would be accepted. Returns nullopt,
// having written nothing, when one would not, or the database has moved on
// (another writer, a deletion, an append's first event id stored; a
// recorded_at that another ticket passed, after calling again at that
// ticket's, kClockRetries times in all): then use WriteAppends. Throws what libpqxx throws, also
// pqxx::unique_violation when another of the event ids is stored (the group
// then wrote nothing and left its positions a gap; run each append alone
// with WriteAppends, which names the id).
std::optional<GroupOutcome> TryWriteAppendsFromCache(
    pqxx::connection& conn, const std::vector<const AppendInput*>& appends,
    std::map<std::string, StreamRow> heads, int64_t recorded_at_micros);

// "version 3", "no stream", ...: for messages.
std::string Describe(ExpectedVersion expected);

}  // namespace logbook::store
