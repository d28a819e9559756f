// EventStore on PostgreSQL. Reads are prepared statements on pooled
// connections in autocommit mode. Appends are calls of logbook.append_events()
// (migrations/0001_initial.sql) made by the GroupCommitter, which lets
// concurrent appends share a transaction.
#include <pqxx/pqxx>

#include <limits>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "connection_pool.h"
#include "group_committer.h"
#include "logbook/store/event_store.h"
#include "logbook/store/status_macros.h"
#include "pg_array.h"
#include "pg_errors.h"

namespace logbook::store {
namespace {

// Statement names and their SQL.
#define LOGBOOK_EVENT_COLUMNS                                                          \
  "global_position, stream_id, stream_version, event_id::text, event_type, data, "     \
  "metadata, content_type, coalesce(correlation_id, ''), coalesce(causation_id, ''), " \
  "(extract(epoch FROM recorded_at) * 1000000)::bigint"

constexpr char kReadStreamForward[] = "read_stream_forward";
constexpr char kReadStreamForwardSql[] =
    "SELECT " LOGBOOK_EVENT_COLUMNS
    " FROM logbook.event_log WHERE stream_id = $1 AND stream_version >= $2"
    " ORDER BY stream_version LIMIT $3";
constexpr char kReadStreamBackward[] = "read_stream_backward";
constexpr char kReadStreamBackwardSql[] =
    "SELECT " LOGBOOK_EVENT_COLUMNS
    " FROM logbook.event_log WHERE stream_id = $1 AND stream_version <= $2"
    " ORDER BY stream_version DESC LIMIT $3";

// Reads of the global log. Parameters: $1 from position, $2 stream prefix,
// $3 category, $4 event types, $5 limit, $6 until position, $7 stream id.
// Three variants per direction, so the planner can use the index that fits:
// the primary key, the category index, or the (stream_id, version) key.
std::string ReadAllSql(bool forward, const char* selector) {
  return absl::StrCat(
      "SELECT " LOGBOOK_EVENT_COLUMNS " FROM logbook.event_log WHERE ", selector,
      forward ? " AND global_position BETWEEN $1 AND $6" : " AND global_position BETWEEN $6 AND $1",
      " AND ($2 = '' OR starts_with(stream_id, $2))"
      " AND (cardinality($4::text[]) = 0 OR event_type = ANY ($4::text[]))"
      " ORDER BY global_position",
      forward ? "" : " DESC", " LIMIT $5");
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

constexpr char kHead[] = "head";
constexpr char kHeadSql[] = "SELECT last_position FROM logbook.log_head";

constexpr char kStreamInfo[] = "stream_info";
constexpr char kStreamInfoSql[] =
    "SELECT version, last_position, (extract(epoch FROM created_at) * 1000000)::bigint"
    " FROM logbook.streams WHERE stream_id = $1";

void PrepareStatements(pqxx::connection& conn) {
  conn.prepare(kReadStreamForward, kReadStreamForwardSql);
  conn.prepare(kReadStreamBackward, kReadStreamBackwardSql);
  conn.prepare(kReadAllForward, ReadAllSql(true, kAnySelector));
  conn.prepare(kReadAllBackward, ReadAllSql(false, kAnySelector));
  conn.prepare(kReadCategoryForward, ReadAllSql(true, kCategorySelector));
  conn.prepare(kReadCategoryBackward, ReadAllSql(false, kCategorySelector));
  conn.prepare(kReadStreamByPositionForward, ReadAllSql(true, kStreamSelector));
  conn.prepare(kReadStreamByPositionBackward, ReadAllSql(false, kStreamSelector));
  conn.prepare(kStreamInfo, kStreamInfoSql);
  conn.prepare(kHead, kHeadSql);
}

constexpr int64_t kExpectAny = -1;
constexpr int64_t kExpectNoStream = -2;
constexpr int64_t kExpectStreamExists = -3;
constexpr uint64_t kMaxSql = std::numeric_limits<int64_t>::max();

int64_t ToSql(uint64_t v) { return static_cast<int64_t>(std::min(v, kMaxSql)); }

absl::Time FromMicros(const pqxx::field& f) { return absl::FromUnixMicros(f.as<int64_t>()); }

std::vector<RecordedEvent> ToEvents(const pqxx::result& rows) {
  std::vector<RecordedEvent> events;
  events.reserve(rows.size());
  for (const auto& row : rows) {
    RecordedEvent& e = events.emplace_back();
    e.global_position = row[0].as<uint64_t>();
    e.stream_id = row[1].as<std::string>();
    e.stream_version = row[2].as<uint64_t>();
    e.event_id = row[3].as<std::string>();
    e.type = row[4].as<std::string>();
    e.data = pqxx::binarystring(row[5]).str();
    e.metadata = pqxx::binarystring(row[6]).str();
    e.content_type = row[7].as<std::string>();
    e.correlation_id = row[8].as<std::string>();
    e.causation_id = row[9].as<std::string>();
    e.recorded_at = FromMicros(row[10]);
  }
  return events;
}

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

class PgEventStore final : public EventStore {
 public:
  explicit PgEventStore(const StoreOptions& options)
      : limits_(options.limits),
        pool_(options.dsn, options.pool_size, options.acquire_timeout, options.max_waiters,
              PrepareStatements),
        committer_(options.dsn, options.group_commit_max_appends,
                   options.group_commit_max_bytes) {}

  absl::Status Ping() {
    return Run("connect to the database",
               [](pqxx::connection&) -> absl::StatusOr<bool> { return true; })
        .status();
  }

  absl::StatusOr<AppendResult> Append(absl::string_view stream_id, ExpectedVersion expected,
                                      std::vector<NewEvent> events) override {
    RETURN_IF_ERROR(ValidateAppend(limits_, stream_id, events));
    int64_t expected_sql = kExpectAny;
    switch (expected.kind) {
      case ExpectedVersion::Kind::kAny:
        break;
      case ExpectedVersion::Kind::kNoStream:
        expected_sql = kExpectNoStream;
        break;
      case ExpectedVersion::Kind::kStreamExists:
        expected_sql = kExpectStreamExists;
        break;
      case ExpectedVersion::Kind::kExact:
        if (expected.version >= kMaxSql) {
          return absl::InvalidArgumentError(
              absl::StrCat("expected_version.exact: ", expected.version, " is out of range"));
        }
        expected_sql = static_cast<int64_t>(expected.version);
        break;
    }

    std::vector<std::string> ids, types, content_types, correlation_ids, causation_ids;
    std::vector<int64_t> data_sizes, metadata_sizes;
    AppendCall call;
    call.stream_id = std::string(stream_id);
    call.expected = expected_sql;
    for (const NewEvent& e : events) {
      ids.push_back(e.event_id);
      types.push_back(e.type);
      content_types.push_back(e.content_type);
      correlation_ids.push_back(e.correlation_id);
      causation_ids.push_back(e.causation_id);
      data_sizes.push_back(static_cast<int64_t>(e.data.size()));
      metadata_sizes.push_back(static_cast<int64_t>(e.metadata.size()));
      call.payload += e.data;
      call.payload += e.metadata;
    }
    call.event_ids = TextArrayLiteral(ids);
    call.types = TextArrayLiteral(types);
    call.content_types = TextArrayLiteral(content_types);
    call.correlation_ids = TextArrayLiteral(correlation_ids);
    call.causation_ids = TextArrayLiteral(causation_ids);
    call.data_sizes = IntArrayLiteral(data_sizes);
    call.metadata_sizes = IntArrayLiteral(metadata_sizes);

    ASSIGN_OR_RETURN(const AppendRow row, committer_.Commit(std::move(call)));
    if (row.outcome == "wrong_version") {
      const bool exists = row.actual_version.has_value();
      absl::Status status = absl::AbortedError(absl::StrCat(
          "wrong expected version for stream '", stream_id, "': expected ", Describe(expected),
          ", but the stream ",
          exists ? absl::StrCat("is at version ", *row.actual_version) : "does not exist"));
      if (exists) {
        status.SetPayload(kActualVersionPayload, absl::Cord(absl::StrCat(*row.actual_version)));
      }
      return status;
    }
    if (row.outcome == "event_id_reused") {
      size_t index = 0;
      while (index < events.size() && events[index].event_id != row.conflicting_event_id) ++index;
      return absl::AlreadyExistsError(absl::StrCat(
          "events[", index, "].event_id: ", row.conflicting_event_id,
          " is already stored in stream '", row.conflicting_stream_id, "' at version ",
          row.conflicting_version));
    }
    if (row.outcome != "ok" && row.outcome != "duplicate") {
      return absl::InternalError(absl::StrCat("append to stream '", stream_id,
                                              "': unexpected outcome '", row.outcome, "'"));
    }
    AppendResult result;
    result.duplicate = row.outcome == "duplicate";
    result.first_version = row.first_version;
    result.last_version = row.last_version;
    result.first_position = row.first_position;
    result.last_position = row.last_position;
    result.committed_at = absl::FromUnixMicros(row.committed_at_micros);
    result.event_ids = std::move(ids);
    return result;
  }

  absl::StatusOr<std::vector<RecordedEvent>> ReadStream(const ReadStreamQuery& query) override {
    RETURN_IF_ERROR(ValidateStreamId(limits_, "stream_id", query.stream_id));
    RETURN_IF_ERROR(ValidateReadCount(limits_, query.max_count));
    const bool forward = query.direction == Direction::kForward;
    const int64_t from = query.from_version ? ToSql(*query.from_version)
                                            : (forward ? 0 : static_cast<int64_t>(kMaxSql));
    const int64_t limit = ToSql(query.max_count ? query.max_count : limits_.default_read_count);
    return RunRead(absl::StrCat("read stream '", query.stream_id, "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<std::vector<RecordedEvent>> {
                 pqxx::nontransaction tx(conn);
                 pqxx::result rows =
                     tx.exec_prepared(forward ? kReadStreamForward : kReadStreamBackward,
                                      query.stream_id, from, limit);
                 if (rows.empty() && tx.exec_prepared(kStreamInfo, query.stream_id).empty()) {
                   return StreamNotFound(query.stream_id);
                 }
                 return ToEvents(rows);
               });
  }

  absl::StatusOr<std::vector<RecordedEvent>> ReadAll(const ReadAllQuery& query) override {
    RETURN_IF_ERROR(ValidateReadCount(limits_, query.max_count));
    RETURN_IF_ERROR(ValidateFilter(limits_, query.filter));
    const bool forward = query.direction == Direction::kForward;
    const int64_t from = query.from_position ? ToSql(*query.from_position)
                                             : (forward ? 0 : static_cast<int64_t>(kMaxSql));
    const int64_t limit = ToSql(query.max_count ? query.max_count : limits_.default_read_count);
    const int64_t until = query.until_position ? ToSql(*query.until_position)
                                               : (forward ? static_cast<int64_t>(kMaxSql) : 0);
    const char* statement =
        !query.filter.stream_id.empty()
            ? (forward ? kReadStreamByPositionForward : kReadStreamByPositionBackward)
        : !query.filter.category.empty() ? (forward ? kReadCategoryForward : kReadCategoryBackward)
                                         : (forward ? kReadAllForward : kReadAllBackward);
    const std::string types = TextArrayLiteral(query.filter.event_types);
    return RunRead("read $all",
                   [&](pqxx::connection& conn) -> absl::StatusOr<std::vector<RecordedEvent>> {
                     pqxx::nontransaction tx(conn);
                     return ToEvents(tx.exec_prepared(statement, from, query.filter.stream_prefix,
                                                      query.filter.category, types, limit, until,
                                                      query.filter.stream_id));
                   });
  }

  absl::StatusOr<uint64_t> HeadPosition() override {
    return RunRead("read the head position", [&](pqxx::connection& conn) -> absl::StatusOr<uint64_t> {
      pqxx::nontransaction tx(conn);
      return tx.exec_prepared(kHead)[0][0].as<uint64_t>();
    });
  }

  absl::StatusOr<StreamInfo> GetStream(absl::string_view stream_id) override {
    RETURN_IF_ERROR(ValidateStreamId(limits_, "stream_id", stream_id));
    const std::string stream(stream_id);
    return RunRead(absl::StrCat("get stream '", stream_id, "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<StreamInfo> {
                 pqxx::nontransaction tx(conn);
                 pqxx::result rows = tx.exec_prepared(kStreamInfo, stream);
                 if (rows.empty()) return StreamNotFound(stream);
                 StreamInfo info;
                 info.stream_id = stream;
                 info.version = rows[0][0].as<uint64_t>();
                 info.last_position = rows[0][1].as<uint64_t>();
                 info.created_at = FromMicros(rows[0][2]);
                 return info;
               });
  }

  absl::StatusOr<DeleteResult> DeleteStream(absl::string_view, ExpectedVersion, bool) override {
    return absl::UnimplementedError("DeleteStream: not yet");
  }
  absl::StatusOr<RedactResult> RedactEvent(absl::string_view, uint64_t,
                                           absl::string_view) override {
    return absl::UnimplementedError("RedactEvent: not yet");
  }
  absl::StatusOr<Snapshot> SaveSnapshot(const Snapshot&) override {
    return absl::UnimplementedError("SaveSnapshot: not yet");
  }
  absl::StatusOr<Snapshot> LoadSnapshot(const SnapshotQuery&) override {
    return absl::UnimplementedError("LoadSnapshot: not yet");
  }
  absl::StatusOr<std::unique_ptr<Verification>> StartVerify(absl::string_view) override {
    return absl::UnimplementedError("Verify: not yet");
  }

  const Limits& limits() const override { return limits_; }

 private:
  static absl::Status StreamNotFound(absl::string_view stream_id) {
    return absl::NotFoundError(absl::StrCat("stream '", stream_id, "' does not exist"));
  }

  // Runs `fn` on a pooled connection, translating what libpqxx throws. A
  // connection that broke is dropped from the pool.
  template <typename Fn>
  auto Run(absl::string_view operation, Fn&& fn) -> decltype(fn(std::declval<pqxx::connection&>())) {
    ASSIGN_OR_RETURN(ConnectionPool::Lease lease, pool_.Acquire());
    auto result = CatchPqxx(operation, [&] { return fn(*lease); });
    if (absl::IsUnavailable(result.status()) || !lease->is_open()) {
      lease.Discard();
      pool_.DiscardIdle();
    }
    return result;
  }

  // Run for reads: a pooled connection may have died while idle (e.g. the
  // database restarted), so one UNAVAILABLE is retried on a fresh one.
  template <typename Fn>
  auto RunRead(absl::string_view operation, Fn&& fn)
      -> decltype(fn(std::declval<pqxx::connection&>())) {
    auto result = Run(operation, fn);
    if (absl::IsUnavailable(result.status())) result = Run(operation, fn);
    return result;
  }

  const Limits limits_;
  ConnectionPool pool_;
  GroupCommitter committer_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<EventStore>> EventStore::Open(const StoreOptions& options) {
  auto store = std::make_unique<PgEventStore>(options);
  RETURN_IF_ERROR(store->Ping());
  return store;
}

}  // namespace logbook::store
