// EventStore on PostgreSQL. Reads are prepared statements on pooled
// connections in autocommit mode. Appends go through the GroupCommitter,
// which lets concurrent appends share a transaction (append_writer.h);
// deletions and redactions write their $audit event the same way, in their
// own transaction on a pooled connection. Every call runs on a connection
// set to its tenant (ConnectionPool::Acquire), so PostgreSQL's row-level
// security shows and lets it write that tenant's rows only; reads of every
// tenant (the live tail) and checkpoints run on the admin pool.
#include <pqxx/pqxx>

#include <limits>

#include "absl/strings/cord.h"
#include "absl/synchronization/notification.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "connection_pool.h"
#include "append_writer.h"
#include "group_committer.h"
#include "logbook/store/event_store.h"
#include "logbook/store/status_macros.h"
#include "logbook/store/uuid.h"
#include "pg_array.h"
#include "pg_errors.h"
#include "event_rows.h"
#include "receipts.h"
#include "verifier.h"

namespace logbook::store {
namespace {

// Statement names and their SQL.
// A read bounded in bytes: the rows of `rows` (FROM ... WHERE ...) in
// `order`, at most the parameter `limit` of them, stopping after the one
// that brings data + metadata to the parameter `max_bytes` or past it (0:
// no bound). The bound becomes the LIMIT, worked out by InitPlans that walk
// the same rows narrowly, by the same index (octet_length reads a TOASTed
// bytea's length from its header, fetching nothing): when all `limit` rows
// together stay under the bound (a plain sum: the common case), `limit`;
// otherwise the number that start under it (a running sum, a window
// function, which costs several times the plain sum per row). The rows
// themselves are read as without a bound, and nothing past it is sent.
// PostgreSQL runs an InitPlan only when the CASE needs its value. (A window
// over the rows themselves cost a catch-up read a third more: it copies
// every wide row through a tuplestore.)
std::string BytesBounded(const std::string& rows, const std::string& order, const char* limit,
                         const char* max_bytes) {
  const std::string sizes = absl::StrCat(
      "(SELECT global_position, stream_version, octet_length(data) + octet_length(metadata) AS "
      "size ", rows, " ORDER BY ", order, " LIMIT ", limit, ") page");
  return absl::StrCat(
      "SELECT " LOGBOOK_EVENT_COLUMNS " ", rows, " ORDER BY ", order, " LIMIT CASE",
      " WHEN ", max_bytes, "::bigint = 0 THEN ", limit,
      " WHEN (SELECT coalesce(sum(size), 0) FROM ", sizes, ") < ", max_bytes, "::bigint THEN ", limit,
      " ELSE (SELECT count(*) FROM (SELECT sum(size) OVER (ORDER BY ", order,
      " ROWS UNBOUNDED PRECEDING) - size AS bytes_before FROM ", sizes,
      ") running WHERE bytes_before < ", max_bytes, "::bigint) END");
}

// Reads of one stream. Parameters: $1 stream id, $2 from version, $3 limit,
// $4 until version, $5 until time, $6 max bytes. Versions below the
// stream's first_version (after a soft delete) are hidden.
constexpr char kReadStreamForward[] = "read_stream_forward";
constexpr char kReadStreamBackward[] = "read_stream_backward";
std::string ReadStreamSql(bool forward) {
  return BytesBounded(
      absl::StrCat(
          "FROM logbook.event_log WHERE stream_id = $1"
          " AND stream_version >= (SELECT first_version FROM logbook.streams WHERE stream_id = $1)"
          " AND recorded_at <= $5::timestamptz",
          forward ? " AND stream_version BETWEEN $2 AND $4"
                  : " AND stream_version <= least($2::bigint, $4::bigint)"),
      forward ? "stream_version" : "stream_version DESC", "$3", "$6");
}

// Reads of the global log. Parameters: $1 from position, $2 stream prefix,
// $3 category, $4 event types, $5 limit, $6 the far end (forward the highest
// position, backward the lowest), $7 stream id, $8 max bytes, $9 and $10
// the prefixes and categories of EventFilter::scopes (both empty: none).
// Three variants per direction, so the planner can use the index that fits:
// the primary key, the category index, or the (stream_id, version) key.
std::string ReadAllSql(bool forward, const char* selector) {
  return BytesBounded(
      absl::StrCat("FROM logbook.event_log WHERE ", selector,
                   forward ? " AND global_position BETWEEN $1 AND $6"
                           : " AND global_position BETWEEN $6 AND $1",
                   " AND ($2 = '' OR starts_with(stream_id, $2))"
                   " AND (cardinality($4::text[]) = 0 OR event_type = ANY ($4::text[]))"
                   " AND (cardinality($9::text[]) + cardinality($10::text[]) = 0"
                   " OR category = ANY ($10::text[])"
                   " OR EXISTS (SELECT FROM unnest($9::text[]) AS p WHERE starts_with(stream_id, p)))"),
      forward ? "global_position" : "global_position DESC", "$5", "$8");
}
constexpr char kAnySelector[] = "($3 = '' OR category = $3) AND ($7 = '' OR stream_id = $7)";
constexpr char kCategorySelector[] = "category = $3 AND ($7 = '' OR stream_id = $7)";
constexpr char kStreamSelector[] = "stream_id = $7 AND ($3 = '' OR category = $3)";
constexpr char kReadAllForward[] = "read_all_forward";
constexpr char kReadAllBackward[] = "read_all_backward";
constexpr char kReadCategoryForward[] = "read_category_forward";
constexpr char kReadCategoryBackward[] = "read_category_backward";
constexpr char kReadStreamByPositionForward[] = "read_stream_by_position_forward";
constexpr char kReadStreamByPositionBackward[] = "read_stream_by_position_backward";

// Reads of the whole log without a filter (catch-up, the live tail): no
// filter expressions to plan or evaluate. Parameters: $1 from position, $2
// the far end, $3 limit, $4 max bytes.
constexpr char kReadRangeForward[] = "read_range_forward";
constexpr char kReadRangeBackward[] = "read_range_backward";
std::string ReadRangeSql(bool forward) {
  return BytesBounded(forward ? "FROM logbook.event_log WHERE global_position BETWEEN $1 AND $2"
                              : "FROM logbook.event_log WHERE global_position BETWEEN $2 AND $1",
                      forward ? "global_position" : "global_position DESC", "$3", "$4");
}

constexpr char kPositionAt[] = "position_at_time";
constexpr char kPositionAtSql[] = "SELECT logbook.position_at($1::timestamptz)";

constexpr char kHead[] = "head";
constexpr char kHeadSql[] = "SELECT last_position FROM logbook.log_head";

constexpr char kStreamInfo[] = "stream_info";
constexpr char kStreamInfoSql[] =
    "SELECT version, last_position, (extract(epoch FROM created_at) * 1000000)::bigint,"
    " head_hash, state, first_version FROM logbook.streams WHERE stream_id = $1";

// $1 after, $2 prefix, $3 limit, $4 and $5 the prefixes and categories of
// the caller's scopes (both empty: every stream).
constexpr char kListStreams[] = "list_streams";
constexpr char kListStreamsSql[] =
    "SELECT stream_id, version, last_position, (extract(epoch FROM created_at) * 1000000)::bigint,"
    " head_hash, state, first_version FROM logbook.streams"
    " WHERE stream_id > $1 AND stream_id >= $2 AND starts_with(stream_id, $2)"
    " AND (cardinality($4::text[]) + cardinality($5::text[]) = 0"
    " OR split_part(stream_id, '-', 1) = ANY ($5::text[])"
    " OR EXISTS (SELECT FROM unnest($4::text[]) AS p WHERE starts_with(stream_id, p)))"
    " ORDER BY stream_id LIMIT $3";
// The distinct categories of event_log, one index probe each (a skip scan
// of event_log_category_idx), from after $1 while they start with $2; $3
// limit; $4 and $5 as for kListStreams. A scope "orders-eu-*" reaches
// category "orders"; "ord*" every category starting with "ord". Names with
// one prefix are adjacent in the byte order of the C.UTF-8 locale Logbook's
// databases are made with (docs/operations.md).
constexpr char kListCategories[] = "list_categories";
constexpr char kListCategoriesSql[] =
    "WITH RECURSIVE c(category) AS ("
    " (SELECT category FROM logbook.event_log WHERE category > $1 AND category >= $2"
    "  ORDER BY category LIMIT 1)"
    " UNION ALL"
    " SELECT (SELECT e.category FROM logbook.event_log e WHERE e.category > c.category"
    "  ORDER BY e.category LIMIT 1) FROM c WHERE starts_with(c.category, $2))"
    " SELECT category FROM c WHERE starts_with(category, $2)"
    " AND (cardinality($4::text[]) + cardinality($5::text[]) = 0 OR category = ANY ($5::text[])"
    " OR EXISTS (SELECT FROM unnest($4::text[]) AS p WHERE CASE WHEN strpos(p, '-') > 0"
    "  THEN category = split_part(p, '-', 1) ELSE starts_with(category, p) END))"
    " LIMIT $3";

// migrations/functions/delete_stream.sql: $1 stream id, $2 the version
// it was found at, $3 tombstone, $4 the principal deleting. Returns the StreamDeleted event's position.
constexpr char kDeleteStream[] = "delete_stream_found";
constexpr char kDeleteStreamSql[] = "SELECT logbook.delete_stream($1, $2, $3, $4)";

// migrations/functions/redact.sql, on the admin connection: $1 stream id,
// $2 version, $3 reason, $4 the principal redacting.
constexpr char kRedact[] = "redact_event";
constexpr char kRedactSql[] =
    "SELECT outcome, global_position, audit_position FROM logbook.redact($1, $2, $3, $4)";

// migrations/functions/save_snapshot.sql: $1 stream id, $2 version, $3
// schema version, $4 state, $5 how many to keep.
constexpr char kSaveSnapshot[] = "save_stream_snapshot";
constexpr char kSaveSnapshotSql[] =
    "SELECT outcome, stream_version, stream_state, created_at_micros"
    " FROM logbook.save_snapshot($1, $2, $3, $4, $5, NULLIF($6::bytea, ''),"
    " NULLIF($7::bytea, ''), NULLIF($8::bytea, ''))";
// The stream's receipt hash at a version: what a snapshot there is of.
constexpr char kSnapshotHead[] = "snapshot_head";
constexpr char kSnapshotHeadSql[] =
    "SELECT receipt_hash FROM logbook.event_log WHERE stream_id = $1 AND stream_version = $2";
// $2 max version, $3 schema version (-1: any).
constexpr char kLoadSnapshot[] = "load_snapshot";
// $4 the signing key's id ('': none): with one, only snapshots it signed.
constexpr char kLoadSnapshotSql[] =
    "SELECT n.stream_version, n.schema_version, n.state,"
    " (extract(epoch FROM n.created_at) * 1000000)::bigint, n.head_hash, n.state_digest,"
    " n.key_id, n.signature, (SELECT e.receipt_hash FROM logbook.event_log e"
    "  WHERE e.stream_id = $1 AND e.stream_version = n.stream_version)"
    " FROM logbook.snapshots n"
    " WHERE n.stream_id = $1 AND n.stream_version <= $2"
    " AND ($3::bigint < 0 OR n.schema_version = $3::bigint)"
    " AND ($4::bytea = '' OR n.key_id = $4::bytea)"
    // A snapshot from before a soft delete includes deleted events.
    " AND n.stream_version >= (SELECT first_version FROM logbook.streams WHERE stream_id = $1)"
    " ORDER BY n.stream_version DESC, n.created_at DESC LIMIT 1";

// Checkpoints (migrations/0013, functions/add_checkpoint.sql).
constexpr char kCheckpointLock[] = "checkpoint_lock";
constexpr char kCheckpointLockSql[] = "SELECT pg_advisory_xact_lock(logbook.checkpoint_lock())";
#define LOGBOOK_CHECKPOINT_COLUMNS                                                   \
  "SELECT id, log_position, log_hash, (extract(epoch FROM created_at) * 1000000)::bigint," \
  " key_id, signature FROM logbook.checkpoints"
constexpr char kLatestCheckpoint[] = "latest_checkpoint";
constexpr char kLatestCheckpointSql[] =
    LOGBOOK_CHECKPOINT_COLUMNS " ORDER BY log_position DESC LIMIT 1";
// $1 after position, $2 until position, $3 limit.
constexpr char kReceiptsPage[] = "receipts_page";
constexpr char kReceiptsPageSql[] =
    "SELECT global_position, receipt_hash FROM logbook.event_log"
    " WHERE global_position > $1 AND global_position <= $2 ORDER BY global_position LIMIT $3";
constexpr char kAddCheckpoint[] = "add_signed_checkpoint";
constexpr char kAddCheckpointSql[] = "SELECT logbook.add_checkpoint($1, $2, $3, $4, $5)";
// $1 the checkpoint's position, $2 after position, $3 entries
// (migrations/functions/add_checkpoint_receipts.sql).
constexpr char kAddCheckpointReceipts[] = "add_checkpoint_receipts";
constexpr char kAddCheckpointReceiptsSql[] = "SELECT logbook.add_checkpoint_receipts($1, $2, $3)";
// One page of receipts is one chunk of checkpoint_receipts: 400 KB.
constexpr int64_t kReceiptsPerPage = 10000;

// A bytea field's bytes; "" for NULL.
std::string Bytes(const pqxx::field& f) { return f.is_null() ? std::string() : ByteaField(f); }

Checkpoint CheckpointFromRow(const pqxx::row& r) {
  return {r[0].as<uint64_t>(), r[1].as<uint64_t>(), ByteaField(r[2]),
          absl::FromUnixMicros(r[3].as<int64_t>()), ByteaField(r[4]), ByteaField(r[5])};
}

void PrepareStatements(pqxx::connection& conn) {
  conn.prepare(kReadStreamForward, ReadStreamSql(true));
  conn.prepare(kReadStreamBackward, ReadStreamSql(false));
  conn.prepare(kReadRangeForward, ReadRangeSql(true));
  conn.prepare(kReadRangeBackward, ReadRangeSql(false));
  conn.prepare(kReadAllForward, ReadAllSql(true, kAnySelector));
  conn.prepare(kReadAllBackward, ReadAllSql(false, kAnySelector));
  conn.prepare(kReadCategoryForward, ReadAllSql(true, kCategorySelector));
  conn.prepare(kReadCategoryBackward, ReadAllSql(false, kCategorySelector));
  conn.prepare(kReadStreamByPositionForward, ReadAllSql(true, kStreamSelector));
  conn.prepare(kReadStreamByPositionBackward, ReadAllSql(false, kStreamSelector));
  conn.prepare(kStreamInfo, kStreamInfoSql);
  conn.prepare(kListStreams, kListStreamsSql);
  conn.prepare(kListCategories, kListCategoriesSql);
  conn.prepare(kHead, kHeadSql);
  conn.prepare(kPositionAt, kPositionAtSql);
  conn.prepare(kDeleteStream, kDeleteStreamSql);
  conn.prepare(kSaveSnapshot, kSaveSnapshotSql);
  conn.prepare(kLoadSnapshot, kLoadSnapshotSql);
  conn.prepare(kSnapshotHead, kSnapshotHeadSql);
  conn.prepare(kCheckpointLock, kCheckpointLockSql);
  conn.prepare(kLatestCheckpoint, kLatestCheckpointSql);
  conn.prepare(kReceiptsPage, kReceiptsPageSql);
  conn.prepare(kAddCheckpoint, kAddCheckpointSql);
  conn.prepare(kAddCheckpointReceipts, kAddCheckpointReceiptsSql);
  PrepareWriteStatements(conn);
  PrepareVerifyStatements(conn);
}

// The admin pool also reads every tenant's log and signs checkpoints.
void PrepareAdminStatements(pqxx::connection& conn) {
  PrepareStatements(conn);
  conn.prepare(kRedact, kRedactSql);
}

constexpr uint64_t kMaxSql = std::numeric_limits<int64_t>::max();

// Connections of the admin pool: redactions and checkpoints are rare and one
// at a time; the live tail reads with one.
constexpr int kAdminConnections = 2;

int64_t ToSql(uint64_t v) { return static_cast<int64_t>(std::min(v, kMaxSql)); }

absl::Time FromMicros(const pqxx::field& f) { return absl::FromUnixMicros(f.as<int64_t>()); }

// A time as timestamptz text PostgreSQL parses exactly; unset: infinity.
std::string SqlTime(std::optional<absl::Time> t) {
  if (!t) return "infinity";
  return absl::FormatTime("%Y-%m-%d %H:%M:%E6S+00", *t, absl::UTCTimeZone());
}

class PgEventStore final : public EventStore {
 public:
  explicit PgEventStore(const StoreOptions& options)
      : limits_(options.limits),
        snapshots_kept_(std::max<size_t>(1, options.snapshots_kept)),
        verify_streams_per_pass_(std::max<size_t>(1, options.verify_streams_per_pass)),
        signing_key_(options.signing_key),
        observer_(options.observer),
        pool_(options.dsn, options.pool_size, options.acquire_timeout, options.max_waiters,
              PrepareStatements, "store", observer_.get()),
        admin_pool_(options.admin_dsn.empty() ? options.dsn : options.admin_dsn,
                    kAdminConnections, options.acquire_timeout, options.max_waiters,
                    PrepareAdminStatements, "admin", observer_.get()),
        committer_([dsn = options.dsn] { return NewPgGroupWriter(dsn); }, options.append_writers,
                   options.group_commit_max_appends, options.group_commit_max_bytes,
                   observer_.get()) {}

  absl::Status Ping() {
    return Run(pool_, "", "connect to the database",
               [](pqxx::connection&) -> absl::StatusOr<bool> { return true; })
        .status();
  }

  void AppendAsync(absl::string_view stream_id, ExpectedVersion expected,
                   std::vector<NewEvent> events, Writer writer, AppendDone done) override {
    if (absl::Status valid = ValidateAppend(limits_, stream_id, events); !valid.ok()) {
      done(valid);
      return;
    }
    if (absl::Status valid = ValidateWriter(limits_, writer); !valid.ok()) {
      done(valid);
      return;
    }
    if (expected.kind == ExpectedVersion::Kind::kExact && expected.version >= kMaxSql) {
      done(absl::InvalidArgumentError(
          absl::StrCat("expected_version.exact: ", expected.version, " is out of range")));
      return;
    }
    committer_.Submit(
        PrepareAppend(std::string(stream_id), expected, std::move(events), std::move(writer)),
        std::move(done));
  }

  absl::StatusOr<std::vector<RecordedEvent>> ReadStream(const ReadStreamQuery& query) override {
    LOGBOOK_RETURN_IF_ERROR(ValidateTenant("tenant", query.tenant));
    LOGBOOK_RETURN_IF_ERROR(ValidateStreamId(limits_, "stream_id", query.stream_id));
    LOGBOOK_RETURN_IF_ERROR(ValidateReadCount(limits_, query.max_count));
    const bool forward = query.direction == Direction::kForward;
    const int64_t from = query.from_version ? ToSql(*query.from_version)
                                            : (forward ? 0 : static_cast<int64_t>(kMaxSql));
    const int64_t limit = ToSql(query.max_count ? query.max_count : limits_.default_read_count);
    const int64_t until = query.until_version ? ToSql(*query.until_version)
                                              : static_cast<int64_t>(kMaxSql);
    const std::string until_time = SqlTime(query.until_time);
    return RunRead(pool_, query.tenant, absl::StrCat("read stream '", query.stream_id, "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<std::vector<RecordedEvent>> {
                 pqxx::nontransaction tx(conn);
                 pqxx::result rows =
                     tx.exec_prepared(forward ? kReadStreamForward : kReadStreamBackward,
                                      query.stream_id, from, limit, until, until_time,
                                      ToSql(query.max_bytes));
                 if (rows.empty()) {
                   // Nothing in range: fine for a live stream, NOT_FOUND otherwise.
                   LOGBOOK_ASSIGN_OR_RETURN(StreamInfo info, LoadStreamInfo(tx, query.stream_id));
                   if (info.state != StreamState::kActive) return StreamNotFound(info);
                 }
                 return ToEvents(rows);
               });
  }

  absl::StatusOr<std::vector<RecordedEvent>> ReadAll(const ReadAllQuery& query) override {
    const bool every_tenant = query.tenant == kAllTenants;
    if (!every_tenant) LOGBOOK_RETURN_IF_ERROR(ValidateTenant("tenant", query.tenant));
    LOGBOOK_RETURN_IF_ERROR(ValidateReadCount(limits_, query.max_count));
    LOGBOOK_RETURN_IF_ERROR(ValidateFilter(limits_, query.filter));
    const bool forward = query.direction == Direction::kForward;
    const int64_t from = query.from_position ? ToSql(*query.from_position)
                                             : (forward ? 0 : static_cast<int64_t>(kMaxSql));
    const int64_t limit = ToSql(query.max_count ? query.max_count : limits_.default_read_count);
    // The highest position this read may return.
    const int64_t bound = query.until_position ? ToSql(*query.until_position)
                                               : static_cast<int64_t>(kMaxSql);
    const char* statement =
        !query.filter.stream_id.empty()
            ? (forward ? kReadStreamByPositionForward : kReadStreamByPositionBackward)
        : !query.filter.category.empty() ? (forward ? kReadCategoryForward : kReadCategoryBackward)
                                         : (forward ? kReadAllForward : kReadAllBackward);
    const pqxx::binarystring types = TextArray(query.filter.event_types).Param();
    const bool unfiltered = query.filter.stream_id.empty() && query.filter.category.empty() &&
                            query.filter.stream_prefix.empty() &&
                            query.filter.event_types.empty() && query.filter.scopes.empty();
    std::vector<std::string> scope_prefixes, scope_categories;
    for (const std::string& scope : query.filter.scopes) {
      if (absl::EndsWith(scope, "*")) {
        scope_prefixes.push_back(scope.substr(0, scope.size() - 1));
      } else {
        scope_categories.push_back(scope);
      }
    }
    const pqxx::binarystring prefixes = TextArray(scope_prefixes).Param();
    const pqxx::binarystring categories = TextArray(scope_categories).Param();
    return RunRead(every_tenant ? admin_pool_ : pool_, query.tenant, "read $all",
                   [&](pqxx::connection& conn) -> absl::StatusOr<std::vector<RecordedEvent>> {
                     pqxx::nontransaction tx(conn);
                     int64_t highest = bound;
                     if (query.until_time) {
                       // recorded_at never decreases with the position, so a
                       // time bound is a position bound.
                       highest = std::min<int64_t>(
                           highest, tx.exec_prepared(kPositionAt, SqlTime(query.until_time))[0][0]
                                        .as<int64_t>());
                     }
                     const int64_t from_sql = forward ? from : std::min(from, highest);
                     const int64_t until_sql = forward ? highest : 0;
                     if (unfiltered) {
                       return ToEvents(
                           tx.exec_prepared(forward ? kReadRangeForward : kReadRangeBackward,
                                            from_sql, until_sql, limit, ToSql(query.max_bytes)));
                     }
                     return ToEvents(tx.exec_prepared(statement, from_sql,
                                                      query.filter.stream_prefix,
                                                      query.filter.category, types, limit,
                                                      until_sql, query.filter.stream_id,
                                                      ToSql(query.max_bytes), prefixes,
                                                      categories));
                   });
  }

  absl::StatusOr<uint64_t> HeadPosition() override {
    return RunRead(pool_, "", "read the head position", [&](pqxx::connection& conn) -> absl::StatusOr<uint64_t> {
      pqxx::nontransaction tx(conn);
      return tx.exec_prepared(kHead)[0][0].as<uint64_t>();
    });
  }

  absl::StatusOr<StreamInfo> GetStream(absl::string_view stream_id,
                                       absl::string_view tenant) override {
    LOGBOOK_RETURN_IF_ERROR(ValidateTenant("tenant", tenant));
    LOGBOOK_RETURN_IF_ERROR(ValidateStreamId(limits_, "stream_id", stream_id));
    const std::string stream(stream_id);
    return RunRead(pool_, tenant, absl::StrCat("get stream '", stream_id, "'"),
                   [&](pqxx::connection& conn) -> absl::StatusOr<StreamInfo> {
                     pqxx::nontransaction tx(conn);
                     return LoadStreamInfo(tx, stream);
                   });
  }

  absl::StatusOr<std::vector<StreamInfo>> ListStreams(const ListQuery& query) override {
    LOGBOOK_ASSIGN_OR_RETURN(const ListParams p, ListParamsOf(query));
    return RunRead(pool_, query.tenant, "list streams",
                   [&](pqxx::connection& conn) -> absl::StatusOr<std::vector<StreamInfo>> {
                     pqxx::nontransaction tx(conn);
                     std::vector<StreamInfo> streams;
                     for (const pqxx::row& row :
                          tx.exec_prepared(kListStreams, query.after, query.prefix, p.limit,
                                           p.prefixes.Param(), p.categories.Param())) {
                       streams.push_back(StreamInfoOf(row[0].as<std::string>(), row, 1));
                     }
                     return streams;
                   });
  }

  absl::StatusOr<std::vector<std::string>> ListCategories(const ListQuery& query) override {
    LOGBOOK_ASSIGN_OR_RETURN(const ListParams p, ListParamsOf(query));
    return RunRead(pool_, query.tenant, "list categories",
                   [&](pqxx::connection& conn) -> absl::StatusOr<std::vector<std::string>> {
                     pqxx::nontransaction tx(conn);
                     std::vector<std::string> categories;
                     for (const pqxx::row& row :
                          tx.exec_prepared(kListCategories, query.after, query.prefix, p.limit,
                                           p.prefixes.Param(), p.categories.Param())) {
                       categories.push_back(row[0].as<std::string>());
                     }
                     return categories;
                   });
  }

  absl::StatusOr<DeleteResult> DeleteStream(absl::string_view stream_id, ExpectedVersion expected,
                                            bool tombstone, const Writer& writer) override {
    LOGBOOK_RETURN_IF_ERROR(ValidateStreamId(limits_, "stream_id", stream_id));
    LOGBOOK_RETURN_IF_ERROR(ValidateWriter(limits_, writer));
    if (stream_id.front() == '$') {
      return absl::InvalidArgumentError("stream_id: system streams cannot be deleted");
    }
    const std::string stream(stream_id);
    return Run(pool_, writer.tenant, absl::StrCat("delete stream '", stream_id, "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<DeleteResult> {
                 pqxx::work tx(conn);
                 const StreamHead s = LockStreams(tx, {stream})[0];
                 LOGBOOK_RETURN_IF_ERROR(CheckDelete(stream, expected, tombstone, s));
                 const uint64_t audit_position =
                     tx.exec_prepared(kDeleteStream, stream, ToSql(s.version), tombstone,
                                      writer.principal)[0][0]
                         .as<uint64_t>();
                 tx.commit();
                 return DeleteResult{s.version, audit_position};
               });
  }

  absl::StatusOr<RedactResult> RedactEvent(absl::string_view stream_id, uint64_t stream_version,
                                           absl::string_view reason,
                                           const Writer& writer) override {
    LOGBOOK_RETURN_IF_ERROR(ValidateStreamId(limits_, "stream_id", stream_id));
    LOGBOOK_RETURN_IF_ERROR(ValidateWriter(limits_, writer));
    LOGBOOK_RETURN_IF_ERROR(ValidateText("reason", reason, 1, limits_.max_reason_bytes));
    if (stream_id.front() == '$') {
      return absl::FailedPreconditionError(
          absl::StrCat("stream_id: events of system stream '", stream_id,
                       "' cannot be redacted"));
    }
    const std::string stream(stream_id), why(reason);
    return Run(admin_pool_, writer.tenant, absl::StrCat("redact ", stream_id, "@", stream_version),
               [&](pqxx::connection& conn) -> absl::StatusOr<RedactResult> {
                 pqxx::work tx(conn);
                 const pqxx::row row =
                     tx.exec_prepared1(kRedact, stream, ToSql(stream_version), why,
                                       writer.principal);
                 const std::string outcome = row[0].as<std::string>();
                 if (outcome == "no_event") {
                   return absl::NotFoundError(absl::StrCat(
                       "stream '", stream, "' has no event at version ", stream_version));
                 }
                 if (outcome == "already_redacted") {
                   return absl::FailedPreconditionError(absl::StrCat(
                       "event ", stream, "@", stream_version, " is already redacted"));
                 }
                 if (outcome != "redacted") {
                   return absl::InternalError(
                       absl::StrCat("logbook.redact answered '", outcome, "'"));
                 }
                 tx.commit();
                 return RedactResult{row[1].as<uint64_t>(), row[2].as<uint64_t>()};
               });
  }

  absl::StatusOr<Snapshot> SaveSnapshot(const Snapshot& snapshot) override {
    LOGBOOK_RETURN_IF_ERROR(ValidateTenant("tenant", snapshot.tenant));
    LOGBOOK_RETURN_IF_ERROR(ValidateStreamId(limits_, "stream_id", snapshot.stream_id));
    if (snapshot.state.size() > limits_.max_snapshot_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("state: ", snapshot.state.size(),
                                                       " bytes exceed the limit of ",
                                                       limits_.max_snapshot_bytes));
    }
    if (snapshot.stream_version >= kMaxSql) {
      return absl::InvalidArgumentError(
          absl::StrCat("stream_version: ", snapshot.stream_version, " is out of range"));
    }
    return Run(pool_, snapshot.tenant,
               absl::StrCat("save a snapshot of stream '", snapshot.stream_id, "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<Snapshot> {
                 pqxx::work tx(conn);
                 const pqxx::binarystring state(snapshot.state.data(), snapshot.state.size());
                 // What it is of, signed with the key (if any); the function
                 // checks the head hash.
                 std::string head_hash, key_id, signature;
                 const pqxx::result head = tx.exec_prepared(
                     kSnapshotHead, snapshot.stream_id, ToSql(snapshot.stream_version));
                 if (!head.empty()) head_hash = ByteaField(head[0][0]);
                 if (signing_key_ != nullptr && !head_hash.empty()) {
                   key_id = signing_key_->key_id();
                   signature = signing_key_->Sign(SnapshotMessage(
                       snapshot.stream_id, snapshot.stream_version, snapshot.schema_version,
                       head_hash, Sha256(snapshot.state)));
                 }
                 const pqxx::binarystring head_param(head_hash.data(), head_hash.size()),
                     key_param(key_id.data(), key_id.size()),
                     signature_param(signature.data(), signature.size());
                 const pqxx::row row = tx.exec_prepared1(
                     kSaveSnapshot, snapshot.stream_id, ToSql(snapshot.stream_version),
                     static_cast<int64_t>(snapshot.schema_version), state,
                     static_cast<int>(snapshots_kept_), head_param, key_param, signature_param);
                 const std::string outcome = row[0].as<std::string>();
                 if (outcome == "no_stream") {
                   return absl::NotFoundError(
                       absl::StrCat("stream '", snapshot.stream_id, "' does not exist"));
                 }
                 if (outcome == "not_active") {
                   StreamInfo info;
                   info.stream_id = snapshot.stream_id;
                   info.version = row[1].as<uint64_t>();
                   info.state = ParseStreamState(row[2].as<std::string>());
                   return StreamNotFound(info);
                 }
                 if (outcome == "head_mismatch") {  // Only if the log changed under it.
                   return absl::DataLossError(absl::StrCat(
                       "stream '", snapshot.stream_id, "' has no receipt at version ",
                       snapshot.stream_version, " matching the one just read"));
                 }
                 if (outcome == "beyond_head") {
                   return absl::FailedPreconditionError(absl::StrCat(
                       "stream_version: ", snapshot.stream_version, " is beyond the head of stream '",
                       snapshot.stream_id, "', version ", row[1].as<uint64_t>()));
                 }
                 tx.commit();
                 Snapshot saved = snapshot;
                 saved.created_at = FromMicros(row[3]);
                 return saved;
               });
  }

  absl::StatusOr<Snapshot> LoadSnapshot(const SnapshotQuery& query) override {
    LOGBOOK_RETURN_IF_ERROR(ValidateTenant("tenant", query.tenant));
    LOGBOOK_RETURN_IF_ERROR(ValidateStreamId(limits_, "stream_id", query.stream_id));
    const int64_t max = query.max_version ? ToSql(*query.max_version)
                                          : static_cast<int64_t>(kMaxSql);
    const int64_t schema = query.schema_version ? int64_t{*query.schema_version} : -1;
    return RunRead(pool_, query.tenant,
                   absl::StrCat("load a snapshot of stream '", query.stream_id, "'"),
                   [&](pqxx::connection& conn) -> absl::StatusOr<Snapshot> {
                     pqxx::nontransaction tx(conn);
                     const std::string key_id =
                         signing_key_ != nullptr ? signing_key_->key_id() : "";
                     pqxx::result rows =
                         tx.exec_prepared(kLoadSnapshot, query.stream_id, max, schema,
                                          pqxx::binarystring(key_id.data(), key_id.size()));
                     if (rows.empty()) {
                       return absl::NotFoundError(absl::StrCat(
                           "stream '", query.stream_id, "' has no snapshot",
                           query.schema_version
                               ? absl::StrCat(" of schema version ", *query.schema_version)
                               : "",
                           query.max_version
                               ? absl::StrCat(" at or below version ", *query.max_version)
                               : ""));
                     }
                     Snapshot s;
                     s.tenant = query.tenant;
                     s.stream_id = query.stream_id;
                     s.stream_version = rows[0][0].as<uint64_t>();
                     s.schema_version = rows[0][1].as<uint32_t>();
                     s.state = ByteaField(rows[0][2]);
                     s.created_at = FromMicros(rows[0][3]);
                     const SnapshotProof proof{Bytes(rows[0][4]), Bytes(rows[0][5]),
                                               Bytes(rows[0][6]), Bytes(rows[0][7])};
                     LOGBOOK_RETURN_IF_ERROR(CheckSnapshot(s.stream_id, s.stream_version,
                                                           s.schema_version, s.state, proof,
                                                           Bytes(rows[0][8]),
                                                           signing_key_.get()));
                     return s;
                   });
  }

  absl::StatusOr<std::unique_ptr<Verification>> StartVerify(absl::string_view stream_id,
                                                           absl::string_view tenant) override {
    LOGBOOK_RETURN_IF_ERROR(ValidateTenant("tenant", tenant));
    if (!stream_id.empty()) {
      LOGBOOK_RETURN_IF_ERROR(ValidateStreamId(limits_, "stream_id", stream_id));
    }
    const std::string stream(stream_id), owner(tenant);
    return RunRead(pool_, owner, absl::StrCat("verify ", stream.empty() ? "$all" : stream),
                   [&](pqxx::connection& conn) -> absl::StatusOr<std::unique_ptr<Verification>> {
                     pqxx::nontransaction tx(conn);
                     return NewVerification(
                         tx, stream, verify_streams_per_pass_, signing_key_.get(),
                         [this, owner](absl::string_view op, const VerifyPage& page) {
                           return RunRead(pool_, owner, op, page);
                         });
                   });
  }

  absl::StatusOr<Checkpoint> CreateCheckpoint() override {
    if (signing_key_ == nullptr) {
      return absl::FailedPreconditionError(
          "checkpoints need a signing key (logbookd --signing-key)");
    }
    const SigningKey& key = *signing_key_;
    return Run(admin_pool_, kAllTenants, "create a checkpoint",
               [&](pqxx::connection& conn) -> absl::StatusOr<Checkpoint> {
      pqxx::work tx(conn);
      tx.exec_prepared(kCheckpointLock);  // Instances sign one after the other.
      const uint64_t head = tx.exec_prepared1(kHead)[0].as<uint64_t>();
      std::optional<Checkpoint> latest;
      if (pqxx::result r = tx.exec_prepared(kLatestCheckpoint); !r.empty()) {
        latest = CheckpointFromRow(r[0]);
      }
      if (latest && latest->log_position >= head) return *latest;
      // From the newest checkpoint this key signed, if it is that; else
      // from the start of the log.
      uint64_t position = 0;
      std::string log_hash = ZeroHash();
      if (latest && latest->key_id == key.key_id() &&
          VerifySignature(key.public_key(),
                          CheckpointMessage(latest->log_position, latest->log_hash,
                                            latest->created_at),
                          latest->signature)) {
        position = latest->log_position;
        log_hash = latest->log_hash;
      }
      // Each page of receipts hashed is recorded too, so that verification
      // can name the event that differs from what was signed.
      for (;;) {
        const pqxx::result page = tx.exec_prepared(kReceiptsPage, ToSql(position), ToSql(head),
                                                   kReceiptsPerPage);
        if (page.empty()) break;
        const uint64_t after = position;
        std::string entries;
        entries.reserve(page.size() * kCheckpointEntrySize);
        for (const auto& r : page) {
          position = r[0].as<uint64_t>();
          const std::string receipt = ByteaField(r[1]);
          log_hash = NextLogHash(log_hash, position, receipt);
          entries += CheckpointEntry(position, receipt);
        }
        const pqxx::binarystring chunk(entries.data(), entries.size());
        if (!tx.exec_prepared1(kAddCheckpointReceipts, ToSql(head), ToSql(after), chunk)[0]
                 .as<bool>()) {
          return absl::AbortedError("create a checkpoint: the log moved under it; retry");
        }
        if (page.size() < static_cast<size_t>(kReceiptsPerPage)) break;
      }
      Checkpoint c;
      c.log_position = head;
      c.log_hash = log_hash;
      c.created_at = absl::FromUnixMicros(absl::ToUnixMicros(absl::Now()));
      c.key_id = key.key_id();
      c.signature = key.Sign(CheckpointMessage(c.log_position, c.log_hash, c.created_at));
      const pqxx::binarystring hash(c.log_hash.data(), c.log_hash.size()),
          key_id(c.key_id.data(), c.key_id.size()),
          signature(c.signature.data(), c.signature.size());
      const pqxx::row id = tx.exec_prepared1(kAddCheckpoint, ToSql(c.log_position), hash,
                                             SqlTime(c.created_at), key_id, signature);
      if (id[0].is_null()) {
        return absl::AbortedError("create a checkpoint: the log moved under it; retry");
      }
      c.id = id[0].as<uint64_t>();
      tx.commit();
      return c;
    });
  }

  absl::Status CheckTenantIsolation() override {
    return RunRead(pool_, "", "check row-level security",
                   [&](pqxx::connection& conn) -> absl::StatusOr<bool> {
      pqxx::nontransaction tx(conn);
      const pqxx::row r = tx.exec1(
          "SELECT r.rolname, r.rolsuper OR r.rolbypassrls, o.rolname, o.rolsuper OR o.rolbypassrls"
          " FROM pg_roles r, pg_class c JOIN pg_roles o ON o.oid = c.relowner"
          " WHERE r.rolname = current_user AND c.oid = 'logbook.event_log'::regclass");
      if (r[3].as<bool>()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the schema's owner '", r[2].as<std::string>(),
            "' is a superuser or has BYPASSRLS, so row-level security does not bind the "
            "functions that write; run the migrations as a role without either "
            "(docs/operations.md \"Roles\")"));
      }
      if (r[1].as<bool>()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the database role '", r[0].as<std::string>(),
            "' is a superuser or has BYPASSRLS, so row-level security does not bind it; "
            "connect as a member of logbook_app (docs/operations.md \"Roles\")"));
      }
      return true;
    }).status();
  }

  absl::StatusOr<Checkpoint> LatestCheckpoint() override {
    return RunRead(pool_, "", "read the latest checkpoint",
                   [&](pqxx::connection& conn) -> absl::StatusOr<Checkpoint> {
                     pqxx::nontransaction tx(conn);
                     pqxx::result r = tx.exec_prepared(kLatestCheckpoint);
                     if (r.empty()) return absl::NotFoundError("no checkpoint was signed yet");
                     return CheckpointFromRow(r[0]);
                   });
  }

  const Limits& limits() const override { return limits_; }

 private:
  static absl::Status StreamNotFound(const StreamInfo& info) {
    switch (info.state) {
      case StreamState::kSoftDeleted:
        return absl::NotFoundError(absl::StrCat("stream '", info.stream_id,
                                                "' was deleted at version ", info.version));
      case StreamState::kTombstoned:
        return absl::NotFoundError(absl::StrCat("stream '", info.stream_id,
                                                "' is tombstoned (deleted for good at version ",
                                                info.version, ")"));
      case StreamState::kActive:
        break;
    }
    return absl::NotFoundError(absl::StrCat("stream '", info.stream_id, "' does not exist"));
  }

  // The stream's row; NOT_FOUND when there is none.
  static absl::StatusOr<StreamInfo> LoadStreamInfo(pqxx::transaction_base& tx,
                                                   const std::string& stream) {
    pqxx::result rows = tx.exec_prepared(kStreamInfo, stream);
    if (rows.empty()) return absl::NotFoundError(absl::StrCat("stream '", stream, "' does not exist"));
    return StreamInfoOf(stream, rows[0], 0);
  }

  // A stream's row: version, last position, created at (micros), head
  // hash, state, first version, from column `first` on.
  static StreamInfo StreamInfoOf(std::string stream, const pqxx::row& row, int first) {
    StreamInfo info;
    info.stream_id = std::move(stream);
    info.version = row[first].as<uint64_t>();
    info.last_position = row[first + 1].as<uint64_t>();
    info.created_at = FromMicros(row[first + 2]);
    if (!row[first + 3].is_null()) info.head_hash = ByteaField(row[first + 3]);
    info.state = ParseStreamState(row[first + 4].as<std::string>());
    info.first_version = row[first + 5].as<uint64_t>();
    return info;
  }

  // A ListQuery checked, its scopes split as kListStreams takes them.
  struct ListParams {
    int64_t limit;
    BinaryArray prefixes, categories;
  };
  absl::StatusOr<ListParams> ListParamsOf(const ListQuery& query) const {
    LOGBOOK_RETURN_IF_ERROR(ValidateTenant("tenant", query.tenant));
    if (query.max_count > kMaxListCount) {
      return absl::InvalidArgumentError(
          absl::StrCat("max_count: ", query.max_count, " is over the limit of ", kMaxListCount));
    }
    if (query.prefix.size() > limits_.max_stream_id_bytes ||
        query.after.size() > limits_.max_stream_id_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          query.prefix.size() > limits_.max_stream_id_bytes ? "prefix" : "after",
          ": longer than a stream id may be (", limits_.max_stream_id_bytes, " bytes)"));
    }
    std::vector<std::string> prefixes, categories;
    for (const std::string& scope : query.scopes) {
      if (absl::EndsWith(scope, "*")) {
        prefixes.push_back(scope.substr(0, scope.size() - 1));
      } else {
        categories.push_back(scope);
      }
    }
    return ListParams{ToSql(query.max_count ? query.max_count : kDefaultListCount),
                      TextArray(prefixes), TextArray(categories)};
  }

  // Runs `fn` on a connection of `pool` set to `tenant` (ConnectionPool::
  // Acquire), translating what libpqxx throws. A connection that broke is
  // dropped from the pool.
  template <typename Fn>
  static auto Run(ConnectionPool& pool, absl::string_view tenant, absl::string_view operation,
                  Fn&& fn) -> decltype(fn(std::declval<pqxx::connection&>())) {
    LOGBOOK_ASSIGN_OR_RETURN(ConnectionPool::Lease lease, pool.Acquire(tenant));
    auto result = CatchPqxx(operation, [&] { return fn(*lease); });
    if (absl::IsUnavailable(result.status()) || !lease->is_open()) {
      lease.Discard();
      pool.DiscardIdle();
    }
    return result;
  }

  // Run for reads: a pooled connection may have died while idle (e.g. the
  // database restarted), so one UNAVAILABLE is retried on a fresh one.
  template <typename Fn>
  static auto RunRead(ConnectionPool& pool, absl::string_view tenant, absl::string_view operation,
                      Fn&& fn) -> decltype(fn(std::declval<pqxx::connection&>())) {
    auto result = Run(pool, tenant, operation, fn);
    if (absl::IsUnavailable(result.status())) result = Run(pool, tenant, operation, fn);
    return result;
  }

  const Limits limits_;
  const size_t snapshots_kept_;
  const size_t verify_streams_per_pass_;
  const std::shared_ptr<const SigningKey> signing_key_;
  const std::shared_ptr<StoreObserver> observer_;  // Before what it observes.
  ConnectionPool pool_;
  // StoreOptions::admin_dsn: RedactEvent, and what reads every tenant
  // (ReadAll of kAllTenants, CreateCheckpoint).
  ConnectionPool admin_pool_;
  GroupCommitter committer_;
};

}  // namespace

absl::StatusOr<AppendResult> EventStore::Append(absl::string_view stream_id,
                                                ExpectedVersion expected,
                                                std::vector<NewEvent> events, Writer writer) {
  absl::Notification finished;
  absl::StatusOr<AppendResult> result;
  AppendAsync(stream_id, expected, std::move(events), std::move(writer),
              [&](absl::StatusOr<AppendResult> r) {
    result = std::move(r);
    finished.Notify();
  });
  finished.WaitForNotification();
  return result;
}

absl::StatusOr<std::unique_ptr<EventStore>> EventStore::Open(const StoreOptions& options) {
  auto store = std::make_unique<PgEventStore>(options);
  LOGBOOK_RETURN_IF_ERROR(store->Ping());
  return store;
}

}  // namespace logbook::store
