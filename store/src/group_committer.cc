#include "group_committer.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "pg_errors.h"

namespace logbook::store {
namespace {

constexpr char kAppend[] = "append";
constexpr char kAppendSql[] =
    "SELECT outcome, actual_version, first_version, last_version, first_position, "
    "last_position, (extract(epoch FROM committed_at) * 1000000)::bigint, "
    "conflicting_event_id::text, conflicting_stream_id, conflicting_version "
    "FROM logbook.append_events($1, $2, $3::uuid[], $4::text[], $5::text[], $6::text[], "
    "$7::text[], $8::bytea, $9::integer[], $10::integer[])";

AppendRow Exec(pqxx::transaction_base& tx, const AppendCall& c) {
  const pqxx::binarystring payload(c.payload.data(), c.payload.size());
  const pqxx::row r = tx.exec_prepared(kAppend, c.stream_id, c.expected, c.event_ids, c.types,
                                       c.content_types, c.correlation_ids, c.causation_ids,
                                       payload, c.data_sizes, c.metadata_sizes)[0];
  AppendRow row;
  row.outcome = r[0].as<std::string>();
  if (!r[1].is_null()) row.actual_version = r[1].as<int64_t>();
  if (row.outcome == "ok" || row.outcome == "duplicate") {
    row.first_version = r[2].as<uint64_t>();
    row.last_version = r[3].as<uint64_t>();
    row.first_position = r[4].as<uint64_t>();
    row.last_position = r[5].as<uint64_t>();
    row.committed_at_micros = r[6].as<int64_t>();
  } else if (row.outcome == "event_id_reused") {
    row.conflicting_event_id = r[7].as<std::string>();
    row.conflicting_stream_id = r[8].as<std::string>();
    row.conflicting_version = r[9].as<int64_t>();
  }
  return row;
}

std::string Operation(const AppendCall& c) {
  return absl::StrCat("append to stream '", c.stream_id, "'");
}

}  // namespace

GroupCommitter::GroupCommitter(std::string dsn, size_t max_batch_appends, size_t max_batch_bytes)
    : dsn_(std::move(dsn)),
      max_batch_appends_(max_batch_appends),
      max_batch_bytes_(max_batch_bytes),
      thread_([this] { Loop(); }) {}

GroupCommitter::~GroupCommitter() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

absl::StatusOr<AppendRow> GroupCommitter::Commit(AppendCall call) {
  Pending pending{std::move(call), absl::UnknownError("not run"), false};
  absl::MutexLock lock(&mu_);
  queue_.push_back(&pending);
  mu_.Await(absl::Condition(&pending.done));
  return std::move(pending.result);
}

void GroupCommitter::Loop() {
  for (;;) {
    std::vector<Pending*> batch;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](GroupCommitter* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) {
            return c->stopping_ || !c->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // Stopping and drained.
      size_t bytes = 0;
      while (!queue_.empty() && batch.size() < max_batch_appends_ &&
             (batch.empty() || bytes + queue_.front()->call.payload.size() <= max_batch_bytes_)) {
        bytes += queue_.front()->call.payload.size();
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    RunBatch(batch);
    absl::MutexLock lock(&mu_);
    for (Pending* p : batch) p->done = true;
  }
}

absl::Status GroupCommitter::Connect() {
  if (conn_ != nullptr && conn_->is_open()) return absl::OkStatus();
  conn_.reset();
  return CatchPqxx("connect to the database", [&]() -> absl::Status {
    conn_ = std::make_unique<pqxx::connection>(dsn_);
    conn_->prepare(kAppend, kAppendSql);
    return absl::OkStatus();
  });
}

void GroupCommitter::RunBatch(const std::vector<Pending*>& batch) {
  if (batch.size() > 1 && Connect().ok()) {
    try {
      pqxx::work tx(*conn_);
      std::vector<AppendRow> rows;
      rows.reserve(batch.size());
      for (Pending* p : batch) rows.push_back(Exec(tx, p->call));
      tx.commit();
      for (size_t i = 0; i < batch.size(); ++i) batch[i]->result = std::move(rows[i]);
      return;
    } catch (...) {
      // Fall through: run each on its own (see the class comment).
      if (!conn_->is_open()) conn_.reset();
    }
  }
  for (Pending* p : batch) p->result = RunAlone(p->call);
}

absl::StatusOr<AppendRow> GroupCommitter::RunAlone(const AppendCall& call) {
  bool sent = false;
  absl::Status last;
  for (int attempt = 0; attempt < 2; ++attempt) {  // A second try on a fresh connection.
    if (absl::Status s = Connect(); !s.ok()) {
      last = s;
      continue;
    }
    sent = true;
    absl::StatusOr<AppendRow> row = CatchPqxx(Operation(call), [&]() -> absl::StatusOr<AppendRow> {
      pqxx::nontransaction tx(*conn_);
      return Exec(tx, call);
    });
    if (!absl::IsUnavailable(row.status())) return row;
    last = row.status();
    conn_.reset();
  }
  if (!sent) return last;
  return absl::UnknownError(absl::StrCat(
      Operation(call), ": the database connection was lost; the append may or may not be "
                       "stored (retrying with the same event ids is safe): ",
      last.message()));
}

}  // namespace logbook::store
