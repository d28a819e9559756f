// The write path: a group of appends in one transaction, one set-based
// statement for all of their events, receipts and stream heads.
#pragma once

#include <string>
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

// Appends each of `appends` in `tx`, in order, after LockHead. Each gets its
// own outcome; one that is not OK writes nothing, so its neighbours are
// unaffected:
//   ABORTED             wrong expected version (payload kActualVersionPayload
//                       when the stream exists)
//   ALREADY_EXISTS      an event id is stored elsewhere
//   FAILED_PRECONDITION the stream is tombstoned
// An append whose event ids are all stored at exactly the versions it would
// give them is OK again with the original positions (an idempotent retry).
// Throws what libpqxx throws; the caller translates (pg_errors.h) and must
// then roll `tx` back.
std::vector<absl::StatusOr<AppendResult>> WriteAppends(
    pqxx::transaction_base& tx, const std::vector<const AppendInput*>& appends);

// "version 3", "no stream", ...: for messages.
std::string Describe(ExpectedVersion expected);

}  // namespace logbook::store
