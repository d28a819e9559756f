#include "append_writer.h"

#include <pqxx/pqxx>

#include <map>
#include <unordered_map>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "logbook/store/event_store.h"
#include "pg_array.h"
#include "receipts.h"

namespace logbook::store {
namespace {

constexpr char kLockHead[] = "lock_head";
constexpr char kLockHeadSql[] = "SELECT 1 FROM logbook.log_head FOR UPDATE";

constexpr char kLoadStreams[] = "load_streams";
constexpr char kLoadStreamsSql[] =
    "SELECT s.stream_id, s.version, s.last_position, s.head_hash, s.state, s.first_version,"
    " (SELECT max(n.stream_version) FROM logbook.snapshots n WHERE n.stream_id = s.stream_id"
    "  AND n.stream_version >= s.first_version)"
    " FROM logbook.streams s WHERE s.stream_id = ANY ($1::text[])";

// See the function's comment in migrations/0004.
constexpr char kLockForAppend[] = "lock_for_append";
constexpr char kLockForAppendSql[] =
    "SELECT row_kind, stream_id, version, last_position, recorded_at_micros, recorded_at,"
    " head_hash, state, first_version, snapshot_version, event_id"
    " FROM logbook.lock_for_append($1::text[], $2::uuid[])";

// Writes a planned group (see the function's comment in migrations/0004).
constexpr char kAppendPrepared[] = "append_prepared";
constexpr char kAppendPreparedSql[] =
    "SELECT stream_id, snapshot_version, first_position FROM logbook.append_prepared("
    "$1::text[], $2::bigint[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[],"
    " $8::bigint[], $9::integer[], $10::integer[], $11::bytea, $12::bytea, $13::timestamptz,"
    " $14::text[], $15::bigint[], $16::bigint[], $17::bytea, $18::bigint[], $19::bytea,"
    " $20::text[])";

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

// Where an event id is stored (or was accepted earlier in this group).
struct StoredEvent {
  std::string stream_id;
  uint64_t version = 0;
  uint64_t position = 0;
  int64_t recorded_at_micros = 0;
};

// The columns of kWriteEventsSql, accumulated over a group.
struct WriteBatch {
  std::vector<std::string> stream_ids, event_ids, types, content_types, correlation_ids,
      causation_ids;
  std::vector<int64_t> versions, data_sizes, metadata_sizes;
  std::vector<std::optional<int64_t>> schema_versions;
  std::string payload, hashes;
};

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

void PrepareWriteStatements(pqxx::connection& conn) {
  conn.prepare(kLockHead, kLockHeadSql);
  conn.prepare(kLoadStreams, kLoadStreamsSql);
  conn.prepare(kLockForAppend, kLockForAppendSql);
  conn.prepare(kAppendPrepared, kAppendPreparedSql);
}

void LockHead(pqxx::transaction_base& tx) { tx.exec_prepared(kLockHead); }

std::vector<StreamRow> LoadStreams(pqxx::transaction_base& tx,
                                   const std::vector<std::string>& stream_ids) {
  std::unordered_map<std::string, StreamRow> found;
  for (const auto& r : tx.exec_prepared(kLoadStreams, TextArrayLiteral(stream_ids))) {
    found[r[0].as<std::string>()] = StreamFromRow(r[1], r[2], r[3], r[4], r[5], r[6]);
  }
  std::vector<StreamRow> rows;
  rows.reserve(stream_ids.size());
  for (const auto& id : stream_ids) rows.push_back(found[id]);
  return rows;
}

namespace {

// A group decided against an assumed state: each append's outcome, and what
// to write for the accepted ones. Positions count from `head_position`.
struct Plan {
  std::vector<absl::StatusOr<AppendResult>> results;
  WriteBatch batch;
  std::vector<std::string> heads;               // Streams written, in first-write order.
  std::map<std::string, StreamRow> before;      // As assumed, for every stream of the group.
  std::map<std::string, StreamRow> after;       // After the group.
  std::map<std::string, int64_t> last_event;    // Heads: their last event's place (1-based).
  std::vector<std::string> result_streams;      // The stream of each result.
};

Plan PlanAppends(const std::vector<const AppendInput*>& appends,
                 std::map<std::string, StreamRow> streams,
                 std::unordered_map<std::string, StoredEvent> stored, uint64_t head_position,
                 int64_t recorded_at_micros) {
  Plan plan;
  plan.before = streams;
  uint64_t next_position = head_position + 1;
  plan.results.reserve(appends.size());
  for (const AppendInput* a : appends) {
    StreamRow& s = streams[a->stream_id];
    const size_t n = a->events.size();
    plan.result_streams.push_back(a->stream_id);

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
        r.head_hash = s.head_hash;
        r.events_since_snapshot = EventsSinceSnapshot(s);
        for (const NewEvent& e : a->events) r.event_ids.push_back(e.event_id);
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

    // Accepted: the events continue the stream's version and hash chain.
    AppendResult r;
    r.first_version = s.exists ? s.version + 1 : 0;
    r.first_position = next_position;
    r.committed_at = absl::FromUnixMicros(recorded_at_micros);
    std::string previous = s.exists ? s.head_hash : ZeroHash();
    WriteBatch& batch = plan.batch;
    for (size_t i = 0; i < n; ++i) {
      const NewEvent& e = a->events[i];
      const uint64_t version = r.first_version + i;
      const std::string id_bytes = UuidBytes(e.event_id);
      const std::string data_digest = Sha256(e.data);
      const std::string metadata_digest = Sha256(e.metadata);
      std::string hash = ReceiptHash({previous, a->stream_id, version, id_bytes, e.type,
                                      e.content_type, recorded_at_micros, e.schema_version,
                                      e.correlation_id, e.causation_id, data_digest,
                                      metadata_digest});
      batch.stream_ids.push_back(a->stream_id);
      batch.versions.push_back(static_cast<int64_t>(version));
      batch.event_ids.push_back(e.event_id);
      batch.types.push_back(e.type);
      batch.content_types.push_back(e.content_type);
      batch.correlation_ids.push_back(e.correlation_id);
      batch.causation_ids.push_back(e.causation_id);
      batch.schema_versions.push_back(e.schema_version);
      batch.data_sizes.push_back(static_cast<int64_t>(e.data.size()));
      batch.metadata_sizes.push_back(static_cast<int64_t>(e.metadata.size()));
      batch.payload += e.data;
      batch.payload += e.metadata;
      batch.hashes += previous;
      batch.hashes += hash;
      batch.hashes += data_digest;
      batch.hashes += metadata_digest;
      stored[e.event_id] = {a->stream_id, version, next_position, recorded_at_micros};
      previous = std::move(hash);
      r.event_ids.push_back(e.event_id);
      ++next_position;
    }
    r.last_version = r.first_version + n - 1;
    r.last_position = next_position - 1;
    if (plan.last_event.count(a->stream_id) == 0) plan.heads.push_back(a->stream_id);
    plan.last_event[a->stream_id] = static_cast<int64_t>(r.last_position - head_position);
    s.exists = true;
    s.state = StreamState::kActive;
    s.version = r.last_version;
    s.last_position = r.last_position;
    s.head_hash = previous;
    r.head_hash = previous;
    plan.results.push_back(std::move(r));
  }
  plan.after = std::move(streams);
  return plan;
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

// Sends the plan's writes to logbook.append_prepared in `tx`. False when the
// database was not as the plan assumed (nothing written). On success the
// accepted results get their final positions and snapshot counts.
bool Write(pqxx::transaction_base& tx, Plan& plan, int64_t recorded_at_micros,
           uint64_t head_position) {
  const WriteBatch& b = plan.batch;
  std::vector<int64_t> versions, last_events, expected_versions;
  std::vector<std::string> expected_states;
  std::string head_hashes, expected_hashes;
  for (const std::string& id : plan.heads) {
    const StreamRow& after = plan.after[id];
    const StreamRow& before = plan.before[id];
    versions.push_back(static_cast<int64_t>(after.version));
    last_events.push_back(plan.last_event[id]);
    head_hashes += after.head_hash;
    expected_versions.push_back(before.exists ? static_cast<int64_t>(before.version) : -1);
    expected_hashes += before.exists ? before.head_hash : ZeroHash();
    expected_states.push_back(StateName(before.state));
  }
  const pqxx::binarystring payload(b.payload.data(), b.payload.size());
  const pqxx::binarystring hashes(b.hashes.data(), b.hashes.size());
  const pqxx::binarystring heads(head_hashes.data(), head_hashes.size());
  const pqxx::binarystring expected(expected_hashes.data(), expected_hashes.size());
  const pqxx::result rows = tx.exec_prepared(
      kAppendPrepared, TextArrayLiteral(b.stream_ids), IntArrayLiteral(b.versions),
      TextArrayLiteral(b.event_ids), TextArrayLiteral(b.types), TextArrayLiteral(b.content_types),
      TextArrayLiteral(b.correlation_ids), TextArrayLiteral(b.causation_ids),
      NullableIntArrayLiteral(b.schema_versions), IntArrayLiteral(b.data_sizes),
      IntArrayLiteral(b.metadata_sizes), payload, hashes, TimestampLiteral(recorded_at_micros),
      TextArrayLiteral(plan.heads), IntArrayLiteral(versions), IntArrayLiteral(last_events),
      heads, IntArrayLiteral(expected_versions), expected, TextArrayLiteral(expected_states));
  if (rows.empty()) return false;
  const uint64_t shift = rows[0][2].as<uint64_t>() - (head_position + 1);
  for (const auto& r : rows) {
    StreamRow& s = plan.after[r[0].as<std::string>()];
    s.snapshot_version.reset();
    if (!r[1].is_null()) s.snapshot_version = r[1].as<uint64_t>();
    s.last_position += shift;
  }
  for (auto& r : plan.results) {
    if (!r.ok() || r->duplicate) continue;
    r->first_position += shift;
    r->last_position += shift;
  }
  return true;
}

// Fills in events_since_snapshot of the accepted appends, from their
// streams' newest snapshots.
void FinishResults(Plan& plan) {
  for (size_t i = 0; i < plan.results.size(); ++i) {
    if (!plan.results[i].ok() || plan.results[i]->duplicate) continue;
    AppendResult& r = *plan.results[i];
    StreamRow s = plan.after[plan.result_streams[i]];
    s.version = r.last_version;
    r.events_since_snapshot = EventsSinceSnapshot(s);
  }
}

}  // namespace

void HeadCache::Remember(const std::map<std::string, StreamRow>& rows, int64_t recorded_at_micros) {
  if (streams.size() + rows.size() > kMaxStreams) streams.clear();
  for (const auto& [id, row] : rows) {
    if (row.exists) {
      streams[id] = row;
    } else {
      streams.erase(id);
    }
  }
  last_recorded_at_micros = std::max(last_recorded_at_micros, recorded_at_micros);
}

std::vector<absl::StatusOr<AppendResult>> WriteAppends(
    pqxx::transaction_base& tx, const std::vector<const AppendInput*>& appends,
    HeadCache* cache) {
  std::map<std::string, StreamRow> streams;
  std::vector<std::string> ids;
  for (const AppendInput* a : appends) {
    streams[a->stream_id];
    for (const NewEvent& e : a->events) ids.push_back(e.event_id);
  }
  std::vector<std::string> stream_ids;
  for (const auto& [id, row] : streams) stream_ids.push_back(id);
  uint64_t head_position = 0;
  int64_t recorded_at_micros = 0;
  std::unordered_map<std::string, StoredEvent> stored;
  for (const auto& r : tx.exec_prepared(kLockForAppend, TextArrayLiteral(stream_ids),
                                        TextArrayLiteral(ids))) {
    const std::string kind = r[0].as<std::string>();
    if (kind == "head") {
      head_position = r[3].as<uint64_t>();
      recorded_at_micros = r[4].as<int64_t>();
    } else if (kind == "stream") {
      streams[r[1].as<std::string>()] = StreamFromRow(r[2], r[3], r[6], r[7], r[8], r[9]);
    } else {
      stored[r[10].as<std::string>()] = {r[1].as<std::string>(), r[2].as<uint64_t>(),
                                         r[3].as<uint64_t>(), r[4].as<int64_t>()};
    }
  }
  Plan plan = PlanAppends(appends, std::move(streams), std::move(stored), head_position,
                          recorded_at_micros);
  if (!plan.batch.event_ids.empty() && !Write(tx, plan, recorded_at_micros, head_position)) {
    throw std::logic_error("logbook.append_prepared refused a group planned under the head lock");
  }
  FinishResults(plan);
  if (cache != nullptr) cache->Remember(plan.after, recorded_at_micros);
  return std::move(plan.results);
}

std::optional<std::vector<absl::StatusOr<AppendResult>>> TryWriteAppendsFromCache(
    pqxx::connection& conn, const std::vector<const AppendInput*>& appends, HeadCache& cache) {
  std::map<std::string, StreamRow> streams;
  for (const AppendInput* a : appends) {
    auto it = cache.streams.find(a->stream_id);
    if (it == cache.streams.end() || it->second.state != StreamState::kActive) return std::nullopt;
    streams[a->stream_id] = it->second;
  }
  const int64_t recorded_at_micros =
      std::max(absl::ToUnixMicros(absl::Now()), cache.last_recorded_at_micros);
  Plan plan = PlanAppends(appends, std::move(streams), {}, 0, recorded_at_micros);
  for (const auto& r : plan.results) {
    // Conflicts are decided under the lock, against what is stored.
    if (!r.ok()) return std::nullopt;
  }
  pqxx::nontransaction tx(conn);  // Autocommit: durable when the call returns.
  if (!Write(tx, plan, recorded_at_micros, 0)) return std::nullopt;
  FinishResults(plan);
  cache.Remember(plan.after, recorded_at_micros);
  return std::move(plan.results);
}

}  // namespace logbook::store
