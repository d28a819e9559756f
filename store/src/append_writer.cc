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
constexpr char kLockHeadSql[] =
    "SELECT last_position, t::text, (extract(epoch FROM t) * 1000000)::bigint FROM ("
    " SELECT last_position, greatest(clock_timestamp(), last_recorded_at) AS t"
    " FROM logbook.log_head FOR UPDATE) h";

constexpr char kLoadStreams[] = "load_streams";
constexpr char kLoadStreamsSql[] =
    "SELECT s.stream_id, s.version, s.last_position, s.head_hash, s.state, s.first_version,"
    " (SELECT max(n.stream_version) FROM logbook.snapshots n WHERE n.stream_id = s.stream_id"
    "  AND n.stream_version >= s.first_version)"
    " FROM logbook.streams s WHERE s.stream_id = ANY ($1::text[])";

constexpr char kFindEventIds[] = "find_event_ids";
constexpr char kFindEventIdsSql[] =
    "SELECT event_id::text, stream_id, stream_version, global_position,"
    " (extract(epoch FROM recorded_at) * 1000000)::bigint"
    " FROM logbook.event_log WHERE event_id = ANY ($1::uuid[])";

// Writes the accepted events, their receipts and the new stream heads, and
// moves the log head. Per event (arrays): $1 stream id, $2 version, $3 id,
// $4 type, $5 content type, $6 correlation id, $7 causation id, $8 schema
// version; $9/$10 data/metadata sizes of the payloads concatenated in $11;
// $12 previous hash, hash, data digest, metadata digest (32 bytes each) per
// event, concatenated. $13 first position, $14 recorded_at. Per stream: $15
// id, $16 version, $17 last position, $18 head hashes concatenated. $19 the
// new head.
constexpr char kWriteEvents[] = "write_events";
constexpr char kWriteEventsSql[] = R"sql(
WITH ev AS (
  SELECT u.*, (u.ord - 1)::integer AS i,
         (sum(u.dsize + u.msize) OVER (ORDER BY u.ord))::integer AS data_end
    FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                $7::text[], $8::bigint[], $9::integer[], $10::integer[])
         WITH ORDINALITY AS u(stream_id, version, id, typ, ctype, corr, caus, schema, dsize,
                              msize, ord)),
events AS (
  INSERT INTO logbook.event_log (global_position, stream_id, stream_version, event_id,
                                 event_type, data, metadata, content_type, correlation_id,
                                 causation_id, recorded_at, schema_version)
  SELECT $13 + ev.ord - 1, ev.stream_id, ev.version, ev.id, ev.typ,
         substring($11::bytea FROM ev.data_end - ev.dsize - ev.msize + 1 FOR ev.dsize),
         substring($11::bytea FROM ev.data_end - ev.msize + 1 FOR ev.msize),
         ev.ctype, NULLIF(ev.corr, ''), NULLIF(ev.caus, ''), $14::timestamptz, ev.schema
    FROM ev ORDER BY ev.ord),
receipts AS (
  INSERT INTO logbook.receipts (global_position, stream_id, stream_version, previous_hash, hash,
                                algorithm, data_digest, metadata_digest)
  SELECT $13 + ev.ord - 1, ev.stream_id, ev.version,
         substring($12::bytea FROM ev.i * 128 + 1 FOR 32),
         substring($12::bytea FROM ev.i * 128 + 33 FOR 32), 'sha256',
         substring($12::bytea FROM ev.i * 128 + 65 FOR 32),
         substring($12::bytea FROM ev.i * 128 + 97 FOR 32)
    FROM ev),
heads AS (
  INSERT INTO logbook.streams AS s (stream_id, version, last_position, head_hash, created_at)
  SELECT u.id, u.version, u.last_position, substring($18::bytea FROM (u.ord - 1)::integer * 32 + 1 FOR 32),
         $14::timestamptz
    FROM unnest($15::text[], $16::bigint[], $17::bigint[])
         WITH ORDINALITY AS u(id, version, last_position, ord)
  ON CONFLICT (stream_id) DO UPDATE
    SET version = EXCLUDED.version, last_position = EXCLUDED.last_position,
        head_hash = EXCLUDED.head_hash, state = 'active')
UPDATE logbook.log_head SET last_position = $19, last_recorded_at = $14::timestamptz
)sql";

StreamState ParseState(const std::string& s) {
  if (s == "soft_deleted") return StreamState::kSoftDeleted;
  if (s == "tombstoned") return StreamState::kTombstoned;
  return StreamState::kActive;
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
  conn.prepare(kFindEventIds, kFindEventIdsSql);
  conn.prepare(kWriteEvents, kWriteEventsSql);
}

void LockHead(pqxx::transaction_base& tx) { tx.exec_prepared(kLockHead); }

std::vector<StreamRow> LoadStreams(pqxx::transaction_base& tx,
                                   const std::vector<std::string>& stream_ids) {
  std::unordered_map<std::string, StreamRow> found;
  for (const auto& r : tx.exec_prepared(kLoadStreams, TextArrayLiteral(stream_ids))) {
    StreamRow& s = found[r[0].as<std::string>()];
    s.exists = true;
    s.version = r[1].as<uint64_t>();
    s.last_position = r[2].as<uint64_t>();
    s.head_hash = r[3].is_null() ? ZeroHash() : ByteaField(r[3]);
    s.state = ParseState(r[4].as<std::string>());
    s.first_version = r[5].as<uint64_t>();
    if (!r[6].is_null()) s.snapshot_version = r[6].as<uint64_t>();
  }
  std::vector<StreamRow> rows;
  rows.reserve(stream_ids.size());
  for (const auto& id : stream_ids) rows.push_back(found[id]);
  return rows;
}

std::vector<absl::StatusOr<AppendResult>> WriteAppends(
    pqxx::transaction_base& tx, const std::vector<const AppendInput*>& appends) {
  const pqxx::row head = tx.exec_prepared(kLockHead)[0];
  const uint64_t head_position = head[0].as<uint64_t>();
  const std::string recorded_at = head[1].as<std::string>();
  const int64_t recorded_at_micros = head[2].as<int64_t>();

  // The streams and event ids this group touches, as stored.
  std::map<std::string, StreamRow> streams;
  std::vector<std::string> ids;
  for (const AppendInput* a : appends) {
    streams[a->stream_id];
    for (const NewEvent& e : a->events) ids.push_back(e.event_id);
  }
  std::vector<std::string> stream_ids;
  for (const auto& [id, row] : streams) stream_ids.push_back(id);
  std::vector<StreamRow> rows = LoadStreams(tx, stream_ids);
  for (size_t i = 0; i < stream_ids.size(); ++i) streams[stream_ids[i]] = std::move(rows[i]);
  std::unordered_map<std::string, StoredEvent> stored;
  for (const auto& r : tx.exec_prepared(kFindEventIds, TextArrayLiteral(ids))) {
    stored[r[0].as<std::string>()] = {r[1].as<std::string>(), r[2].as<uint64_t>(),
                                      r[3].as<uint64_t>(), r[4].as<int64_t>()};
  }

  WriteBatch batch;
  std::vector<std::string> touched;  // Streams written, in first-write order.
  uint64_t next_position = head_position + 1;
  std::vector<absl::StatusOr<AppendResult>> results;
  results.reserve(appends.size());
  for (const AppendInput* a : appends) {
    StreamRow& s = streams[a->stream_id];
    const size_t n = a->events.size();

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
    if (found > 0) {
      const ExpectedVersion& x = a->expected;
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
        results.push_back(std::move(r));
      } else {
        const std::string& id = a->events[first_found].event_id;
        const StoredEvent& where = stored[id];
        results.push_back(absl::AlreadyExistsError(
            absl::StrCat("events[", first_found, "].event_id: ", id,
                         " is already stored in stream '", where.stream_id, "' at version ",
                         where.version)));
      }
      continue;
    }

    if (s.exists && s.state == StreamState::kTombstoned) {
      results.push_back(absl::FailedPreconditionError(absl::StrCat(
          "stream '", a->stream_id, "' is tombstoned (deleted for good); it cannot be written")));
      continue;
    }
    const bool live = s.exists && s.state == StreamState::kActive;
    const ExpectedVersion& x = a->expected;
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
      results.push_back(std::move(status));
      continue;
    }

    // Accepted: the events continue the stream's version and hash chain.
    AppendResult r;
    r.first_version = s.exists ? s.version + 1 : 0;
    r.first_position = next_position;
    r.committed_at = absl::FromUnixMicros(recorded_at_micros);
    std::string previous = s.exists ? s.head_hash : ZeroHash();
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
    if (std::find(touched.begin(), touched.end(), a->stream_id) == touched.end()) {
      touched.push_back(a->stream_id);
    }
    s.exists = true;
    s.state = StreamState::kActive;
    s.version = r.last_version;
    s.last_position = r.last_position;
    s.head_hash = previous;
    r.head_hash = previous;
    r.events_since_snapshot = EventsSinceSnapshot(s);
    results.push_back(std::move(r));
  }

  if (!batch.event_ids.empty()) {
    std::vector<std::string> heads_ids;
    std::vector<int64_t> heads_versions, heads_positions;
    std::string heads_hashes;
    for (const std::string& id : touched) {
      const StreamRow& s = streams[id];
      heads_ids.push_back(id);
      heads_versions.push_back(static_cast<int64_t>(s.version));
      heads_positions.push_back(static_cast<int64_t>(s.last_position));
      heads_hashes += s.head_hash;
    }
    const pqxx::binarystring payload(batch.payload.data(), batch.payload.size());
    const pqxx::binarystring hashes(batch.hashes.data(), batch.hashes.size());
    const pqxx::binarystring head_hashes(heads_hashes.data(), heads_hashes.size());
    tx.exec_prepared(kWriteEvents, TextArrayLiteral(batch.stream_ids),
                     IntArrayLiteral(batch.versions), TextArrayLiteral(batch.event_ids),
                     TextArrayLiteral(batch.types), TextArrayLiteral(batch.content_types),
                     TextArrayLiteral(batch.correlation_ids),
                     TextArrayLiteral(batch.causation_ids), NullableIntArrayLiteral(batch.schema_versions),
                     IntArrayLiteral(batch.data_sizes), IntArrayLiteral(batch.metadata_sizes),
                     payload, hashes, static_cast<int64_t>(head_position + 1), recorded_at,
                     TextArrayLiteral(heads_ids), IntArrayLiteral(heads_versions),
                     IntArrayLiteral(heads_positions), head_hashes,
                     static_cast<int64_t>(next_position - 1));
  }
  return results;
}

}  // namespace logbook::store
