#include "append_writer.h"

#include <pqxx/pqxx>

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "pg_array.h"
#include "receipts.h"

namespace logbook::store {
namespace {

// Statement names differ from the SQL functions' they call, so a search for
// either finds one thing.

// migrations/functions/load_for_append.sql: $1 stream ids, $2 event ids.
constexpr char kLoadGroup[] = "load_group";
constexpr char kLoadGroupSql[] =
    "SELECT row_kind, stream_id, version, last_position, recorded_at_micros, head_hash, state,"
    " first_version, snapshot_version, event_id, last_event_version"
    " FROM logbook.load_for_append($1::text[], $2::uuid[])";

// migrations/functions/append_cached.sql: $1 the events, $2 each written
// append's first event id, $3 recorded_at, $4-$7 the written streams' new
// heads, $8-$10 what they are expected to be now.
constexpr char kAppendGroup[] = "append_group";
constexpr char kAppendGroupSql[] =
    "SELECT stream_id, snapshot_version, first_position, later_recorded_at_micros"
    " FROM logbook.append_cached("
    "$1::logbook.new_event[], $2::uuid[], $3::timestamptz, $4::text[], $5::bigint[],"
    " $6::bigint[], $7::bytea, $8::bigint[], $9::bytea, $10::text[])";
// migrations/functions/append_loaded.sql: $1 the events, $2 recorded_at,
// $3-$6 the written streams' new heads.
constexpr char kAppendLoadedGroup[] = "append_loaded_group";
constexpr char kAppendLoadedGroupSql[] =
    "SELECT stream_id, snapshot_version, first_position, later_recorded_at_micros"
    " FROM logbook.append_loaded("
    "$1::logbook.new_event[], $2::timestamptz, $3::text[], $4::bigint[], $5::bigint[],"
    " $6::bytea)";

// The fields of logbook.new_event (migrations/0009, 0019).
constexpr int kNewEventFields = 17;

// Calls of logbook.append_cached for one group whose recorded_at a
// concurrent writer's ticket passed, each at that ticket's time.
constexpr int kClockRetries = 3;

// The OID of logbook.new_event, which differs between databases, for each
// connection PrepareWriteStatements prepared. Every connection is prepared
// before it writes, so a new connection at a freed one's address replaces
// its entry before use.
absl::Mutex new_event_oids_mu;
absl::flat_hash_map<const pqxx::connection_base*, uint32_t> new_event_oids
    ABSL_GUARDED_BY(new_event_oids_mu);

uint32_t NewEventOid(const pqxx::connection_base& conn) {
  absl::MutexLock lock(&new_event_oids_mu);
  const auto it = new_event_oids.find(&conn);
  if (it == new_event_oids.end()) {
    throw std::logic_error("append_writer: the connection was not PrepareWriteStatements()ed");
  }
  return it->second;
}

const char* StateName(StreamState state) {
  switch (state) {
    case StreamState::kSoftDeleted:
      return "soft_deleted";
    case StreamState::kTombstoned:
      return "tombstoned";
    case StreamState::kActive:
      break;
  }
  return "active";
}

// A stored stream's head from its columns.
StreamHead HeadFromRow(const pqxx::field& version, const pqxx::field& last_position,
                       const pqxx::field& head_hash, const pqxx::field& state,
                       const pqxx::field& first_version, const pqxx::field& snapshot_version) {
  StreamHead s;
  s.exists = true;
  s.version = version.as<uint64_t>();
  s.last_position = last_position.as<uint64_t>();
  s.head_hash = head_hash.is_null() ? ZeroHash() : ByteaField(head_hash);
  s.state = ParseStreamState(state.as<std::string>());
  s.first_version = first_version.as<uint64_t>();
  if (!snapshot_version.is_null()) s.snapshot_version = snapshot_version.as<uint64_t>();
  return s;
}

// The rows logbook.append_cached inserts: the plan's written events with
// their receipts.
BinaryRowArray EventRows(const AppendPlan& plan, const std::vector<const AppendInput*>& appends,
                         const GroupReceipts& receipts, uint32_t new_event_oid) {
  BinaryRowArray rows(new_event_oid, kNewEventFields);
  size_t value_bytes = 0;
  for (size_t k = 0; k < appends.size(); ++k) {
    if (!plan.written[k]) continue;
    value_bytes += appends[k]->bytes;
    for (const NewEvent& e : appends[k]->events) {
      value_bytes += appends[k]->stream_id.size() + e.type.size() + e.content_type.size() +
                     e.correlation_id.size() + e.causation_id.size() +
                     appends[k]->writer.tenant.size() + appends[k]->writer.principal.size() +
                     e.traceparent.size() + 16 + 8 + 8 + 4 * kHashBytes;
    }
  }
  rows.Reserve(plan.events, value_bytes);
  size_t next = 0;
  for (size_t k = 0; k < appends.size(); ++k) {
    if (!plan.written[k]) continue;
    const AppendInput& a = *appends[k];
    for (size_t i = 0; i < a.events.size(); ++i, ++next) {
      const NewEvent& e = a.events[i];
      rows.StartRow();
      rows.AddText(a.stream_id);
      rows.AddInt8(static_cast<int64_t>(plan.results[k]->first_version + i));
      rows.AddUuid(a.event_id_bytes(i));
      rows.AddText(e.type);
      rows.AddText(e.content_type);
      rows.AddTextOrNull(e.correlation_id);
      rows.AddTextOrNull(e.causation_id);
      rows.AddInt8(e.schema_version);
      rows.AddBytea(e.data);
      rows.AddBytea(e.metadata);
      rows.AddBytea(receipts.previous_hashes[next]);
      rows.AddBytea(receipts.hashes[next]);
      rows.AddBytea(a.data_digest(i));
      rows.AddBytea(a.metadata_digest(i));
      rows.AddText(a.writer.tenant);
      rows.AddText(a.writer.principal);
      rows.AddTextOrNull(e.traceparent);
    }
  }
  return rows;
}

// Where a plan's heads came from, and so which call writes it.
enum class Heads {
  kKnown,   // This process's earlier writes: append_cached checks them.
  kLoaded,  // Loaded and locked in this transaction: append_loaded.
};

// Writes `plan` in `tx`, at `recorded_at_micros` or, when a concurrent
// writer's ticket passed it, at that ticket's time. nullopt, having written
// nothing, when known heads differ from the database, or the clock retries
// ran out.
std::optional<GroupOutcome> Write(pqxx::transaction_base& tx, AppendPlan plan,
                                  const std::vector<const AppendInput*>& appends,
                                  int64_t recorded_at_micros, Heads heads) {
  if (plan.events == 0) {  // Retries and failures only.
    FinishPlan(plan, appends, {}, 1, 0, {});
    return GroupOutcome{std::move(plan.results), std::move(plan.after)};
  }
  // The written streams: what they become, and (known heads) what they must
  // be now, with each written append's first event id, which must not be
  // stored yet.
  std::vector<int64_t> versions, last_events, expected_versions;
  std::vector<std::string> expected_states;
  std::string expected_hashes;
  BinaryArray first_event_ids(BinaryArray::Type::kUuid);
  for (const std::string& id : plan.heads) {
    versions.push_back(static_cast<int64_t>(plan.after.at(id).version));
    last_events.push_back(static_cast<int64_t>(plan.last_event.at(id)));
    if (heads == Heads::kKnown) {
      const StreamHead& before = plan.before.at(id);
      expected_versions.push_back(static_cast<int64_t>(before.version));
      expected_hashes += before.head_hash;
      expected_states.push_back(StateName(before.state));
    }
  }
  for (size_t k = 0; k < appends.size() && heads == Heads::kKnown; ++k) {
    if (plan.written[k]) first_event_ids.Add(appends[k]->event_id_bytes(0));
  }
  const pqxx::binarystring expected(expected_hashes.data(), expected_hashes.size());
  const uint32_t new_event_oid = NewEventOid(tx.conn());
  for (int attempt = 0; attempt < kClockRetries; ++attempt) {
    const GroupReceipts receipts = HashReceipts(plan, appends, recorded_at_micros);
    std::string head_hashes;  // Each written stream's last receipt.
    for (const std::string& id : plan.heads) head_hashes += receipts.heads.at(id);
    const pqxx::binarystring new_heads(head_hashes.data(), head_hashes.size());
    const pqxx::binarystring events = EventRows(plan, appends, receipts, new_event_oid).Param();
    const pqxx::result rows =
        heads == Heads::kKnown
            ? tx.exec_prepared(kAppendGroup, events, first_event_ids.Param(),
                               TimestampLiteral(recorded_at_micros),
                               TextArray(plan.heads).Param(), Int8Array(versions).Param(),
                               Int8Array(last_events).Param(), new_heads,
                               Int8Array(expected_versions).Param(), expected,
                               TextArray(expected_states).Param())
            : tx.exec_prepared(kAppendLoadedGroup, events, TimestampLiteral(recorded_at_micros),
                               TextArray(plan.heads).Param(), Int8Array(versions).Param(),
                               Int8Array(last_events).Param(), new_heads);
    if (rows.empty()) return std::nullopt;
    if (rows[0][0].is_null()) {
      recorded_at_micros = std::max(rows[0][3].as<int64_t>(), absl::ToUnixMicros(absl::Now()));
      continue;
    }
    std::map<std::string, std::optional<uint64_t>> snapshots;
    for (const auto& r : rows) {
      snapshots[r[0].as<std::string>()] =
          r[1].is_null() ? std::nullopt : std::optional<uint64_t>(r[1].as<uint64_t>());
    }
    FinishPlan(plan, appends, receipts, rows[0][2].as<uint64_t>(), recorded_at_micros,
               snapshots);
    return GroupOutcome{std::move(plan.results), std::move(plan.after)};
  }
  return std::nullopt;
}

}  // namespace

void PrepareWriteStatements(pqxx::connection& conn) {
  conn.prepare(kLoadGroup, kLoadGroupSql);
  conn.prepare(kAppendGroup, kAppendGroupSql);
  conn.prepare(kAppendLoadedGroup, kAppendLoadedGroupSql);
  const auto oid = pqxx::nontransaction(conn)
                       .exec1("SELECT 'logbook.new_event'::regtype::oid")[0]
                       .as<uint32_t>();
  absl::MutexLock lock(&new_event_oids_mu);
  new_event_oids[&conn] = oid;
}

StreamState ParseStreamState(const std::string& state) {
  if (state == "soft_deleted") return StreamState::kSoftDeleted;
  if (state == "tombstoned") return StreamState::kTombstoned;
  return StreamState::kActive;
}

std::vector<StreamHead> LockStreams(pqxx::transaction_base& tx,
                                    const std::vector<std::string>& stream_ids) {
  std::unordered_map<std::string, StreamHead> found;
  const BinaryArray no_events(BinaryArray::Type::kUuid);
  for (const auto& r : tx.exec_prepared(kLoadGroup, TextArray(stream_ids).Param(),
                                        no_events.Param())) {
    found[r[1].as<std::string>()] = HeadFromRow(r[2], r[3], r[5], r[6], r[7], r[8]);
  }
  std::vector<StreamHead> rows;
  rows.reserve(stream_ids.size());
  for (const auto& id : stream_ids) rows.push_back(found[id]);
  return rows;
}

std::optional<GroupOutcome> AppendWithKnownHeads(pqxx::connection& conn,
                                                 const std::vector<const AppendInput*>& appends,
                                                 std::map<std::string, StreamHead> heads,
                                                 int64_t recorded_at_micros) {
  AppendPlan plan = PlanAppends(appends, std::move(heads), {});
  // Conflicts are decided under the locks, against what is stored.
  if (!plan.AllAccepted()) return std::nullopt;
  pqxx::nontransaction tx(conn);  // Autocommit: durable when the call returns.
  return Write(tx, std::move(plan), appends, recorded_at_micros, Heads::kKnown);
}

std::optional<GroupOutcome> AppendLoadingHeads(pqxx::transaction_base& tx,
                                               const std::vector<const AppendInput*>& appends,
                                               int64_t not_before_micros) {
  std::map<std::string, StreamHead> streams;
  BinaryArray ids(BinaryArray::Type::kUuid);
  for (const AppendInput* a : appends) {
    streams[a->stream_id];
    for (size_t i = 0; i < a->events.size(); ++i) ids.Add(a->event_id_bytes(i));
  }
  std::vector<std::string> stream_ids;
  for (const auto& [id, head] : streams) stream_ids.push_back(id);
  const pqxx::result loaded =
      tx.exec_prepared(kLoadGroup, TextArray(stream_ids).Param(), ids.Param());
  StoredEvents stored;  // Views into `loaded`, which outlives the plan's use of them.
  for (const auto& r : loaded) {
    if (r[0].as<std::string>() == "stream") {
      StreamHead& head = streams[r[1].as<std::string>()];
      head = HeadFromRow(r[2], r[3], r[5], r[6], r[7], r[8]);
      // NULL (a row without events) can match no version.
      head.last_event_version =
          r[10].is_null() ? std::numeric_limits<uint64_t>::max() : r[10].as<uint64_t>();
    } else {
      stored[absl::string_view(r[9].c_str(), r[9].size())] = {
          absl::string_view(r[1].c_str(), r[1].size()), r[2].as<uint64_t>(),
          r[3].as<uint64_t>(), r[4].as<int64_t>()};
    }
  }
  AppendPlan plan = PlanAppends(appends, std::move(streams), stored);
  return Write(tx, std::move(plan), appends,
               std::max(absl::ToUnixMicros(absl::Now()), not_before_micros), Heads::kLoaded);
}

void HeadCache::Remember(const std::map<std::string, StreamHead>& rows) {
  if (streams.size() + rows.size() > kMaxStreams) streams.clear();
  for (const auto& [id, row] : rows) {
    // A row its events contradict stays out: its appends must be refused
    // under the lock (DATA_LOSS), not tried in one call that fails late.
    const bool contradicted = row.last_event_version && *row.last_event_version != row.version;
    if (row.exists && !contradicted) {
      streams[id] = row;
      streams[id].last_event_version.reset();  // Checked where it is loaded.
    } else {
      streams.erase(id);
    }
  }
}

}  // namespace logbook::store
