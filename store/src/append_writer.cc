#include "append_writer.h"

#include <pqxx/pqxx>

#include <algorithm>
#include <map>
#include <unordered_map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "logbook/store/event_store.h"
#include "pg_array.h"
#include "receipts.h"

namespace logbook::store {
namespace {

constexpr char kLockStreams[] = "lock_streams";
constexpr char kLockStreamsSql[] =
    "SELECT s.stream_id, s.version, s.last_position, s.head_hash, s.state, s.first_version,"
    " (SELECT max(n.stream_version) FROM logbook.snapshots n WHERE n.stream_id = s.stream_id"
    "  AND n.stream_version >= s.first_version)"
    " FROM (SELECT DISTINCT x.id FROM unnest($1::text[]) AS x(id) ORDER BY x.id) k"
    " CROSS JOIN LATERAL (SELECT * FROM logbook.streams t WHERE t.stream_id = k.id"
    "                      FOR UPDATE) s";  // One index probe per id (see migrations/0006).

// See the functions' comments in migrations/0005.
constexpr char kLoadForAppend[] = "load_for_append";
constexpr char kLoadForAppendSql[] =
    "SELECT row_kind, stream_id, version, last_position, recorded_at_micros, head_hash, state,"
    " first_version, snapshot_version, event_id"
    " FROM logbook.load_for_append($1::text[], $2::uuid[])";
constexpr char kTakeTicket[] = "take_ticket";
constexpr char kTakeTicketSql[] =
    "SELECT ticket, first_position, recorded_at_micros, recorded_at"
    " FROM logbook.take_ticket($1::integer, NULL)";
constexpr char kAppendCached[] = "append_cached";
constexpr char kAppendCachedSql[] =
    "SELECT stream_id, snapshot_version, first_position, later_recorded_at_micros"
    " FROM logbook.append_cached("
    "$1::logbook.new_event[], $2::uuid[], $3::timestamptz, $4::text[], $5::bigint[],"
    " $6::bigint[], $7::bytea, $8::bigint[], $9::bytea, $10::text[])";
constexpr char kWriteAppends[] = "write_appends";
constexpr char kWriteAppendsSql[] =
    "SELECT stream_id, snapshot_version FROM logbook.write_appends("
    "$1::bigint, $2::bigint, $3::logbook.new_event[], $4::timestamptz, $5::text[], $6::bigint[],"
    " $7::bigint[], $8::bytea)";

// The OID of logbook.new_event, which differs between databases, for each
// connection PrepareWriteStatements prepared. Every connection is prepared
// before it writes, so a new connection at a freed one's address replaces
// its entry before use.
absl::Mutex new_event_oids_mu;
absl::flat_hash_map<const pqxx::connection_base*, uint32_t>& NewEventOids()
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(new_event_oids_mu) {
  static auto* const oids = new absl::flat_hash_map<const pqxx::connection_base*, uint32_t>;
  return *oids;
}

uint32_t NewEventOid(const pqxx::connection_base& conn) {
  absl::MutexLock lock(&new_event_oids_mu);
  const auto it = NewEventOids().find(&conn);
  if (it == NewEventOids().end()) {
    throw std::logic_error("append_writer: the connection was not PrepareWriteStatements()ed");
  }
  return it->second;
}

StreamState ParseState(const std::string& s) {
  if (s == "soft_deleted") return StreamState::kSoftDeleted;
  if (s == "tombstoned") return StreamState::kTombstoned;
  return StreamState::kActive;
}

// A stored stream's row from its columns.
StreamRow StreamFromRow(const pqxx::field& version, const pqxx::field& last_position,
                        const pqxx::field& head_hash, const pqxx::field& state,
                        const pqxx::field& first_version, const pqxx::field& snapshot_version) {
  StreamRow s;
  s.exists = true;
  s.version = version.as<uint64_t>();
  s.last_position = last_position.as<uint64_t>();
  s.head_hash = head_hash.is_null() ? ZeroHash() : ByteaField(head_hash);
  s.state = ParseState(state.as<std::string>());
  s.first_version = first_version.as<uint64_t>();
  if (!snapshot_version.is_null()) s.snapshot_version = snapshot_version.as<uint64_t>();
  return s;
}

// Where an event id is stored (or was accepted earlier in this group). The
// views point into the loaded rows or the group's AppendInputs.
struct StoredEvent {
  absl::string_view stream_id;
  uint64_t version = 0;
  uint64_t position = 0;  // Within the group (1-based) when in_group.
  int64_t recorded_at_micros = 0;
  bool in_group = false;  // Accepted earlier in this group: not stored yet.
};

// The fields of logbook.new_event (migrations/0009).
constexpr int kNewEventFields = 14;

// The accepted events of a group: how many, each accepted append's first
// event id (PlanAppends), and the rows logbook.write_appends inserts (Hash,
// once recorded_at is known).
struct WriteBatch {
  size_t size = 0;
  BinaryArray first_event_ids{BinaryArray::Type::kUuid};
  BinaryRowArray events{0, kNewEventFields};
};

// Calls of logbook.append_cached for one group whose recorded_at a
// concurrent writer's ticket passed, before it goes the locked way.
constexpr int kClockRetries = 3;

// Bytes per event in AppendInput::id_and_digests.
constexpr size_t kIdAndDigestsBytes = 16 + 2 * kHashBytes;

// Events a reader replays on top of the newest snapshot: all readable ones
// (from first_version on) when there is none.
uint64_t EventsSinceSnapshot(const StreamRow& s) {
  const uint64_t base = s.snapshot_version ? *s.snapshot_version + 1 : s.first_version;
  return s.version + 1 - std::min(s.version + 1, base);
}

}  // namespace

std::string Describe(ExpectedVersion expected) {
  switch (expected.kind) {
    case ExpectedVersion::Kind::kAny:
      return "any version";
    case ExpectedVersion::Kind::kNoStream:
      return "no stream";
    case ExpectedVersion::Kind::kStreamExists:
      return "an existing stream";
    case ExpectedVersion::Kind::kExact:
      return absl::StrCat("version ", expected.version);
  }
  return "?";
}

AppendInput PrepareAppend(std::string stream_id, ExpectedVersion expected,
                          std::vector<NewEvent> events) {
  AppendInput a{std::move(stream_id), expected, std::move(events), 0};
  a.id_and_digests.reserve(a.events.size() * kIdAndDigestsBytes);
  for (const NewEvent& e : a.events) {
    a.bytes += e.data.size() + e.metadata.size();
    a.id_and_digests += UuidBytes(e.event_id);
    a.id_and_digests += Sha256(e.data);
    a.id_and_digests += Sha256(e.metadata);
  }
  return a;
}

void PrepareWriteStatements(pqxx::connection& conn) {
  conn.prepare(kLockStreams, kLockStreamsSql);
  conn.prepare(kLoadForAppend, kLoadForAppendSql);
  conn.prepare(kTakeTicket, kTakeTicketSql);
  conn.prepare(kWriteAppends, kWriteAppendsSql);
  conn.prepare(kAppendCached, kAppendCachedSql);
  const auto oid = pqxx::nontransaction(conn)
                       .exec1("SELECT 'logbook.new_event'::regtype::oid")[0]
                       .as<uint32_t>();
  absl::MutexLock lock(&new_event_oids_mu);
  NewEventOids()[&conn] = oid;
}

std::vector<StreamRow> LockStreams(pqxx::transaction_base& tx,
                                   const std::vector<std::string>& stream_ids) {
  std::unordered_map<std::string, StreamRow> found;
  for (const auto& r : tx.exec_prepared(kLockStreams, TextArray(stream_ids).Param())) {
    found[r[0].as<std::string>()] = StreamFromRow(r[1], r[2], r[3], r[4], r[5], r[6]);
  }
  std::vector<StreamRow> rows;
  rows.reserve(stream_ids.size());
  for (const auto& id : stream_ids) rows.push_back(found[id]);
  return rows;
}

namespace {

// A group decided against the locked stream rows: each append's outcome,
// and what to write for the accepted ones, whose positions count from 1
// until the group has its ticket.
struct Plan {
  std::vector<absl::StatusOr<AppendResult>> results;
  std::vector<bool> accepted;                   // Per append: its events are written.
  WriteBatch batch;
  std::vector<std::string> heads;               // Streams written, in first-write order.
  std::map<std::string, StreamRow> before;      // As loaded, for every stream of the group.
  std::map<std::string, StreamRow> after;       // After the group.
  std::map<std::string, int64_t> last_event;    // Heads: their last event's place (1-based).
  std::vector<std::string> result_streams;      // The stream of each result.
  std::vector<size_t> in_group_duplicates;      // Retries of events accepted in this group.
};

// Event ids (views) and where they are.
using StoredEvents = absl::flat_hash_map<absl::string_view, StoredEvent>;

Plan PlanAppends(const std::vector<const AppendInput*>& appends,
                 std::map<std::string, StreamRow> streams, StoredEvents stored) {
  Plan plan;
  plan.before = streams;
  uint64_t next_place = 1;
  plan.results.reserve(appends.size());
  size_t events = 0;
  for (const AppendInput* a : appends) events += a->events.size();
  stored.reserve(stored.size() + events);
  for (const AppendInput* a : appends) {
    StreamRow& s = streams[a->stream_id];
    const size_t n = a->events.size();
    plan.result_streams.push_back(a->stream_id);
    plan.accepted.push_back(false);

    // An idempotent retry, or an event id used elsewhere?
    size_t found = 0, first_found = 0;
    bool same_place = true;
    uint64_t dup_first = 0;
    for (size_t i = 0; i < n; ++i) {
      auto it = stored.find(a->events[i].event_id);
      if (it == stored.end()) continue;
      if (found++ == 0) {
        first_found = i;
        dup_first = it->second.version - std::min<uint64_t>(it->second.version, i);
      }
      if (it->second.stream_id != a->stream_id || it->second.version != dup_first + i) {
        same_place = false;
      }
    }
    const ExpectedVersion& x = a->expected;
    if (found > 0) {
      const bool expected_fits =
          x.kind == ExpectedVersion::Kind::kAny || x.kind == ExpectedVersion::Kind::kStreamExists ||
          (x.kind == ExpectedVersion::Kind::kNoStream && dup_first == 0) ||
          (x.kind == ExpectedVersion::Kind::kExact && dup_first == x.version + 1);
      if (found == n && same_place && expected_fits) {
        const StoredEvent& first = stored[a->events.front().event_id];
        const StoredEvent& last = stored[a->events.back().event_id];
        AppendResult r;
        r.duplicate = true;
        r.first_version = first.version;
        r.last_version = last.version;
        r.first_position = first.position;
        r.last_position = last.position;
        r.committed_at = absl::FromUnixMicros(first.recorded_at_micros);
        r.events_since_snapshot = EventsSinceSnapshot(s);
        for (const NewEvent& e : a->events) r.event_ids.push_back(e.event_id);
        if (first.in_group) plan.in_group_duplicates.push_back(plan.results.size());
        plan.results.push_back(std::move(r));
      } else {
        const std::string& id = a->events[first_found].event_id;
        const StoredEvent& where = stored[id];
        plan.results.push_back(absl::AlreadyExistsError(
            absl::StrCat("events[", first_found, "].event_id: ", id,
                         " is already stored in stream '", where.stream_id, "' at version ",
                         where.version)));
      }
      continue;
    }

    if (s.exists && s.state == StreamState::kTombstoned) {
      plan.results.push_back(absl::FailedPreconditionError(absl::StrCat(
          "stream '", a->stream_id, "' is tombstoned (deleted for good); it cannot be written")));
      continue;
    }
    const bool live = s.exists && s.state == StreamState::kActive;
    if ((x.kind == ExpectedVersion::Kind::kNoStream && live) ||
        (x.kind == ExpectedVersion::Kind::kStreamExists && !live) ||
        (x.kind == ExpectedVersion::Kind::kExact && (!live || s.version != x.version))) {
      absl::Status status = absl::AbortedError(absl::StrCat(
          "wrong expected version for stream '", a->stream_id, "': expected ", Describe(x),
          ", but the stream ",
          live        ? absl::StrCat("is at version ", s.version)
          : s.exists ? absl::StrCat("was deleted at version ", s.version)
                     : std::string("does not exist")));
      if (live) status.SetPayload(kActualVersionPayload, absl::Cord(absl::StrCat(s.version)));
      plan.results.push_back(std::move(status));
      continue;
    }

    // Accepted: the events continue the stream's versions.
    AppendResult r;
    r.first_version = s.exists ? s.version + 1 : 0;
    r.first_position = next_place;
    plan.batch.size += n;
    plan.batch.first_event_ids.Add(absl::string_view(a->id_and_digests).substr(0, 16));
    for (size_t i = 0; i < n; ++i) {
      const NewEvent& e = a->events[i];
      const uint64_t version = r.first_version + i;
      stored[e.event_id] = {a->stream_id, version, next_place, 0, true};  // Views: no copies.
      r.event_ids.push_back(e.event_id);
      ++next_place;
    }
    r.last_version = r.first_version + n - 1;
    r.last_position = next_place - 1;
    if (plan.last_event.count(a->stream_id) == 0) plan.heads.push_back(a->stream_id);
    plan.last_event[a->stream_id] = static_cast<int64_t>(r.last_position);
    s.exists = true;
    s.state = StreamState::kActive;
    s.version = r.last_version;
    s.last_position = r.last_position;
    plan.accepted.back() = true;
    plan.results.push_back(std::move(r));
  }
  plan.after = std::move(streams);
  return plan;
}

// Hashes the receipts of the accepted events, chained from each stream's
// head as loaded, with recorded_at `recorded_at_micros`, into the rows to
// write (of the type with OID `new_event_oid`); sets every result's head
// hash and the written streams' new ones.
void Hash(Plan& plan, const std::vector<const AppendInput*>& appends,
          int64_t recorded_at_micros, uint32_t new_event_oid) {
  BinaryRowArray& rows = plan.batch.events;
  rows = BinaryRowArray(new_event_oid, kNewEventFields);
  size_t events = 0, value_bytes = 0;
  for (size_t k = 0; k < appends.size(); ++k) {
    if (!plan.accepted[k]) continue;
    events += appends[k]->events.size();
    value_bytes += appends[k]->bytes;
    for (const NewEvent& e : appends[k]->events) {
      value_bytes += appends[k]->stream_id.size() + e.type.size() + e.content_type.size() +
                     e.correlation_id.size() + e.causation_id.size() + 16 + 8 + 8 +
                     4 * kHashBytes;
    }
  }
  rows.Reserve(events, value_bytes);
  std::map<std::string, std::string> heads;  // Each stream's newest hash so far.
  for (const auto& [id, row] : plan.before) heads[id] = row.exists ? row.head_hash : ZeroHash();
  for (size_t k = 0; k < appends.size(); ++k) {
    absl::StatusOr<AppendResult>& result = plan.results[k];
    if (!result.ok()) continue;
    const AppendInput* a = appends[k];
    std::string& previous = heads[a->stream_id];
    if (plan.accepted[k]) {
      for (size_t i = 0; i < a->events.size(); ++i) {
        const NewEvent& e = a->events[i];
        const absl::string_view id_and_digests = absl::string_view(a->id_and_digests)
                                                     .substr(i * kIdAndDigestsBytes,
                                                             kIdAndDigestsBytes);
        const uint64_t version = result->first_version + i;
        std::string hash = ReceiptHash(
            {previous, a->stream_id, version, id_and_digests.substr(0, 16), e.type,
             e.content_type, recorded_at_micros, e.schema_version, e.correlation_id,
             e.causation_id, id_and_digests.substr(16, kHashBytes),
             id_and_digests.substr(16 + kHashBytes)});
        rows.StartRow();
        rows.AddText(a->stream_id);
        rows.AddInt8(static_cast<int64_t>(version));
        rows.AddUuid(id_and_digests.substr(0, 16));
        rows.AddText(e.type);
        rows.AddText(e.content_type);
        rows.AddTextOrNull(e.correlation_id);
        rows.AddTextOrNull(e.causation_id);
        rows.AddInt8(e.schema_version);
        rows.AddBytea(e.data);
        rows.AddBytea(e.metadata);
        rows.AddBytea(previous);
        rows.AddBytea(hash);
        rows.AddBytea(id_and_digests.substr(16, kHashBytes));
        rows.AddBytea(id_and_digests.substr(16 + kHashBytes));
        previous = std::move(hash);
      }
      result->committed_at = absl::FromUnixMicros(recorded_at_micros);
    }
    result->head_hash = previous;
  }
  for (size_t k : plan.in_group_duplicates) {
    plan.results[k]->committed_at = absl::FromUnixMicros(recorded_at_micros);
  }
  for (auto& [id, row] : plan.after) {
    if (plan.last_event.count(id) != 0) row.head_hash = heads[id];
  }
}

std::string StateName(StreamState state) {
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

// Moves the accepted events (and retries of them) from positions counted
// from 1 to positions counted from `first_position`.
void Shift(Plan& plan, uint64_t first_position) {
  const uint64_t shift = first_position - 1;
  for (size_t k = 0; k < plan.results.size(); ++k) {
    if (!plan.accepted[k]) continue;
    plan.results[k]->first_position += shift;
    plan.results[k]->last_position += shift;
  }
  for (size_t k : plan.in_group_duplicates) {
    plan.results[k]->first_position += shift;
    plan.results[k]->last_position += shift;
  }
  for (auto& [id, row] : plan.after) {
    if (plan.last_event.count(id) != 0) row.last_position += shift;
  }
}

// The per-stream columns of the written streams: new version, last event's
// place, new head hash.
struct Heads {
  std::vector<int64_t> versions, last_events;
  std::string hashes;
};
Heads WrittenHeads(Plan& plan) {
  Heads h;
  for (const std::string& id : plan.heads) {
    const StreamRow& after = plan.after[id];
    h.versions.push_back(static_cast<int64_t>(after.version));
    h.last_events.push_back(plan.last_event[id]);
    h.hashes += after.head_hash;
  }
  return h;
}

// Records the written streams' newest snapshots from `rows` (stream id,
// snapshot version).
void SetSnapshots(Plan& plan, const pqxx::result& rows) {
  for (const auto& r : rows) {
    StreamRow& s = plan.after[r[0].as<std::string>()];
    s.snapshot_version.reset();
    if (!r[1].is_null()) s.snapshot_version = r[1].as<uint64_t>();
  }
}

// Sends the hashed plan to logbook.write_appends in `tx`, at the positions
// of `ticket` from `first_position` on.
void Write(pqxx::transaction_base& tx, Plan& plan, int64_t ticket, uint64_t first_position,
           const std::string& recorded_at) {
  const Heads h = WrittenHeads(plan);
  const pqxx::binarystring heads(h.hashes.data(), h.hashes.size());
  SetSnapshots(plan, tx.exec_prepared(
      kWriteAppends, ticket, static_cast<int64_t>(first_position), plan.batch.events.Param(),
      recorded_at, TextArray(plan.heads).Param(), Int8Array(h.versions).Param(),
      Int8Array(h.last_events).Param(), heads));
}

// Fills in events_since_snapshot of the accepted appends, from their
// streams' newest snapshots.
void FinishResults(Plan& plan) {
  for (size_t i = 0; i < plan.results.size(); ++i) {
    if (!plan.accepted[i]) continue;
    AppendResult& r = *plan.results[i];
    StreamRow s = plan.after[plan.result_streams[i]];
    s.version = r.last_version;
    r.events_since_snapshot = EventsSinceSnapshot(s);
  }
}

}  // namespace

GroupOutcome WriteAppends(pqxx::transaction_base& tx,
                          const std::vector<const AppendInput*>& appends) {
  std::map<std::string, StreamRow> streams;
  BinaryArray ids(BinaryArray::Type::kUuid);
  for (const AppendInput* a : appends) {
    streams[a->stream_id];
    for (size_t i = 0; i < a->events.size(); ++i) {
      ids.Add(absl::string_view(a->id_and_digests).substr(i * kIdAndDigestsBytes, 16));
    }
  }
  std::vector<std::string> stream_ids;
  for (const auto& [id, row] : streams) stream_ids.push_back(id);
  StoredEvents stored;  // Views into `loaded`, which outlives the plan's use of them.
  const pqxx::result loaded =
      tx.exec_prepared(kLoadForAppend, TextArray(stream_ids).Param(), ids.Param());
  for (const auto& r : loaded) {
    if (r[0].as<std::string>() == "stream") {
      streams[r[1].as<std::string>()] = StreamFromRow(r[2], r[3], r[5], r[6], r[7], r[8]);
    } else {
      stored[absl::string_view(r[9].c_str(), r[9].size())] = {
          absl::string_view(r[1].c_str(), r[1].size()), r[2].as<uint64_t>(),
          r[3].as<uint64_t>(), r[4].as<int64_t>()};
    }
  }
  Plan plan = PlanAppends(appends, std::move(streams), std::move(stored));
  const size_t accepted = plan.batch.size;
  if (accepted > 0) {
    const pqxx::row ticket = tx.exec_prepared1(kTakeTicket, static_cast<int64_t>(accepted));
    const uint64_t first_position = ticket[1].as<uint64_t>();
    Hash(plan, appends, ticket[2].as<int64_t>(), NewEventOid(tx.conn()));
    Shift(plan, first_position);
    Write(tx, plan, ticket[0].as<int64_t>(), first_position, ticket[3].as<std::string>());
    FinishResults(plan);
  } else {
    Hash(plan, appends, 0, 0);  // Head hashes of the idempotent retries.
  }
  return {std::move(plan.results), std::move(plan.after)};
}

void HeadCache::Remember(const std::map<std::string, StreamRow>& rows) {
  if (streams.size() + rows.size() > kMaxStreams) streams.clear();
  for (const auto& [id, row] : rows) {
    if (row.exists) {
      streams[id] = row;
    } else {
      streams.erase(id);
    }
  }
}

std::optional<GroupOutcome> TryWriteAppendsFromCache(
    pqxx::connection& conn, const std::vector<const AppendInput*>& appends,
    std::map<std::string, StreamRow> heads, int64_t recorded_at_micros) {
  Plan plan = PlanAppends(appends, std::move(heads), {});
  for (const auto& r : plan.results) {
    // Conflicts are decided under the locks, against what is stored.
    if (!r.ok()) return std::nullopt;
  }
  std::vector<int64_t> expected_versions;
  std::vector<std::string> expected_states;
  std::string expected_hashes;
  for (const std::string& id : plan.heads) {
    const StreamRow& before = plan.before[id];
    expected_versions.push_back(static_cast<int64_t>(before.version));
    expected_hashes += before.head_hash;
    expected_states.push_back(StateName(before.state));
  }
  const pqxx::binarystring expected(expected_hashes.data(), expected_hashes.size());
  pqxx::nontransaction tx(conn);  // Autocommit: durable when the call returns.
  // Concurrent writers reach take_ticket in another order than they read the
  // clock: a group whose recorded_at another ticket has passed is hashed
  // again at that ticket's.
  for (int attempt = 0; attempt < kClockRetries; ++attempt) {
    Hash(plan, appends, recorded_at_micros, NewEventOid(conn));
    const Heads h = WrittenHeads(plan);
    const pqxx::binarystring head_hashes(h.hashes.data(), h.hashes.size());
    const pqxx::result rows = tx.exec_prepared(
        kAppendCached, plan.batch.events.Param(), plan.batch.first_event_ids.Param(),
        TimestampLiteral(recorded_at_micros), TextArray(plan.heads).Param(),
        Int8Array(h.versions).Param(), Int8Array(h.last_events).Param(), head_hashes,
        Int8Array(expected_versions).Param(), expected, TextArray(expected_states).Param());
    if (rows.empty()) return std::nullopt;
    if (rows[0][0].is_null()) {
      recorded_at_micros =
          std::max(rows[0][3].as<int64_t>(), absl::ToUnixMicros(absl::Now()));
      continue;
    }
    Shift(plan, rows[0][2].as<uint64_t>());
    SetSnapshots(plan, rows);
    FinishResults(plan);
    return GroupOutcome{std::move(plan.results), std::move(plan.after)};
  }
  return std::nullopt;
}

}  // namespace logbook::store
