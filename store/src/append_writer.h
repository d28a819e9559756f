// The write path's SQL: loads what a group of appends is decided on, and
// writes what append_plan.h decided in one call (migrations/functions/),
// which takes the group's positions and publishes them in position order
// once every earlier writer has ended.
//
// There are two ways to know a group's streams:
//   AppendWithKnownHeads  from this process's earlier writes (HeadCache): the
//                         whole append is one call of logbook.append_cached,
//                         which checks them under the streams' locks, in
//                         autocommit;
//   AppendLoadingHeads    loaded under the streams' locks first
//                         (logbook.load_for_append), then written by
//                         logbook.append_loaded, in a transaction.
// Both hash the receipts with logbookd's clock; when a concurrent writer's
// ticket already passed that time, the call says so, having written
// nothing, and the group is hashed again at that ticket's time.
//
// Not thread-safe per connection: each connection belongs to one caller.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <pqxx/connection>
#include <pqxx/transaction_base>

#include "absl/status/statusor.h"
#include "append_plan.h"

namespace logbook::store {

// Prepares the statements below on `conn` and notes its database's OID of
// logbook.new_event (done on every new connection, before it writes; throws
// what libpqxx throws, also when the schema predates migration 0009).
void PrepareWriteStatements(pqxx::connection& conn);

// A stream state as logbook.streams.state spells it.
StreamState ParseStreamState(const std::string& state);

// The rows of `stream_ids` (missing ones have exists = false), locked until
// `tx` ends (logbook.load_for_append): appends to these streams wait for it.
std::vector<StreamHead> LockStreams(pqxx::transaction_base& tx,
                                    const std::vector<std::string>& stream_ids);

// What a group of appends did: each append's outcome, and the heads of its
// streams afterwards (for HeadCache).
struct GroupOutcome {
  std::vector<absl::StatusOr<AppendResult>> results;
  std::map<std::string, StreamHead> streams;
};

// The group in one autocommit call, decided against `heads` (every stream of
// the group, as this process last wrote it), hashed at `recorded_at_micros`
// or later. Returns nullopt, having written nothing, when an append would
// not be accepted against those heads (conflicts are decided under the
// locks, by AppendLoadingHeads), or the database has moved on (another
// writer, a deletion, an append's first event id stored, a clock that other
// writers kept passing). Throws what libpqxx throws, also
// pqxx::unique_violation when another of the event ids is stored: then
// nothing was written and the positions taken are a recorded gap.
std::optional<GroupOutcome> AppendWithKnownHeads(pqxx::connection& conn,
                                                 const std::vector<const AppendInput*>& appends,
                                                 std::map<std::string, StreamHead> heads,
                                                 int64_t recorded_at_micros);

// The group in `tx`: locks its streams and loads them and the stored event
// ids among its own, decides every append (append_plan.h), and writes the
// accepted ones at the current time (never before `not_before_micros`). The
// caller commits; each append has its own outcome, and one that is not OK
// writes nothing. Returns nullopt, having written nothing, when concurrent
// writers kept taking tickets with later clocks: roll back and run the group
// again. Throws what libpqxx throws, also pqxx::unique_violation when a
// concurrent writer stored one of the event ids after the load (the next
// try finds it).
std::optional<GroupOutcome> AppendLoadingHeads(pqxx::transaction_base& tx,
                                               const std::vector<const AppendInput*>& appends,
                                               int64_t not_before_micros);

// Stream heads as this process last wrote or loaded them: a guess that lets
// a group go to the database in one call (AppendWithKnownHeads), which
// logbook.append_cached checks under the streams' locks. Bounded (cleared
// when full). Not thread-safe.
struct HeadCache {
  static constexpr size_t kMaxStreams = 100000;
  std::unordered_map<std::string, StreamHead> streams;
  int64_t last_recorded_at_micros = 0;  // The latest recorded_at this process used.
  void Remember(const std::map<std::string, StreamHead>& rows);
};

}  // namespace logbook::store
