#include "group_committer.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "pg_errors.h"

namespace logbook::store {
namespace {

std::string Operation(const AppendInput& a) {
  return absl::StrCat("append to stream '", a.stream_id, "'");
}

}  // namespace

GroupCommitter::GroupCommitter(std::string dsn, size_t max_batch_appends, size_t max_batch_bytes)
    : dsn_(std::move(dsn)),
      max_batch_appends_(max_batch_appends),
      max_batch_bytes_(max_batch_bytes),
      thread_([this] { Loop(); }),
      answer_thread_([this] { AnswerLoop(); }) {}

GroupCommitter::~GroupCommitter() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
  {
    absl::MutexLock lock(&mu_);
    committer_done_ = true;
  }
  answer_thread_.join();
}

void GroupCommitter::Submit(AppendInput append, Done done) {
  auto pending = std::make_unique<Pending>();
  pending->append = std::move(append);
  pending->done = std::move(done);
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(pending));
}

void GroupCommitter::Loop() {
  for (;;) {
    std::vector<std::unique_ptr<Pending>> batch;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](GroupCommitter* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) {
            return c->stopping_ || !c->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // Stopping and drained.
      // The callers answered last time usually come straight back: wait a
      // moment for them so they share this transaction instead of the next.
      if (last_batch_ >= kWaitForReturningCallers) {
        mu_.AwaitWithTimeout(absl::Condition(
                                 +[](GroupCommitter* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) {
                                   return c->stopping_ || c->queue_.size() >= c->last_batch_;
                                 },
                                 this),
                             kMaxWait);
      }
      size_t bytes = 0;
      while (!queue_.empty() && batch.size() < max_batch_appends_ &&
             (batch.empty() || bytes + queue_.front()->append.bytes <= max_batch_bytes_)) {
        bytes += queue_.front()->append.bytes;
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      last_batch_ = batch.size();
    }
    RunBatch(batch);
    if (batch.size() <= kAnswerInline) {
      for (auto& p : batch) p->done(std::move(p->result));
      continue;
    }
    absl::MutexLock lock(&mu_);
    for (auto& p : batch) answers_.push_back(std::move(p));
  }
}

std::vector<absl::StatusOr<AppendResult>> GroupCommitter::Write(
    const std::vector<const AppendInput*>& appends) {
  if (auto written = TryWriteAppendsFromCache(*conn_, appends, cache_)) return *std::move(written);
  pqxx::work tx(*conn_);
  std::vector<absl::StatusOr<AppendResult>> results = WriteAppends(tx, appends, &cache_);
  tx.commit();
  return results;
}

void GroupCommitter::AnswerLoop() {
  for (;;) {
    std::deque<std::unique_ptr<Pending>> answers;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](GroupCommitter* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) {
            return c->committer_done_ || !c->answers_.empty();
          },
          this));
      if (answers_.empty()) return;  // The committer is done and all are answered.
      answers.swap(answers_);
    }
    for (auto& p : answers) p->done(std::move(p->result));
  }
}

absl::Status GroupCommitter::Connect() {
  if (conn_ != nullptr && conn_->is_open()) return absl::OkStatus();
  conn_.reset();
  return CatchPqxx("connect to the database", [&]() -> absl::Status {
    conn_ = std::make_unique<pqxx::connection>(dsn_);
    PrepareWriteStatements(*conn_);
    return absl::OkStatus();
  });
}

void GroupCommitter::RunBatch(const std::vector<std::unique_ptr<Pending>>& batch) {
  if (batch.size() > 1 && Connect().ok()) {
    try {
      std::vector<const AppendInput*> appends;
      for (const auto& p : batch) appends.push_back(&p->append);
      std::vector<absl::StatusOr<AppendResult>> results = Write(appends);
      for (size_t i = 0; i < batch.size(); ++i) batch[i]->result = std::move(results[i]);
      return;
    } catch (...) {
      // Fall through: run each on its own (see the class comment).
      cache_ = HeadCache();
      if (!conn_->is_open()) conn_.reset();
    }
  }
  for (const auto& p : batch) p->result = RunAlone(p->append);
}

absl::StatusOr<AppendResult> GroupCommitter::RunAlone(const AppendInput& append) {
  bool sent = false;
  absl::Status last;
  for (int attempt = 0; attempt < 2; ++attempt) {  // A second try on a fresh connection.
    if (absl::Status s = Connect(); !s.ok()) {
      last = s;
      continue;
    }
    sent = true;
    absl::StatusOr<AppendResult> result =
        CatchPqxx(Operation(append), [&]() -> absl::StatusOr<AppendResult> {
          return std::move(Write({&append})[0]);
        });
    if (!result.ok() && !absl::IsAborted(result.status()) &&
        !absl::IsAlreadyExists(result.status()) && !absl::IsFailedPrecondition(result.status())) {
      cache_ = HeadCache();  // After an error the database may differ from it.
    }
    if (!absl::IsUnavailable(result.status())) return result;
    last = result.status();
    conn_.reset();
  }
  if (!sent) return last;
  return absl::UnknownError(absl::StrCat(
      Operation(append), ": the database connection was lost; the append may or may not be "
                         "stored (retrying with the same event ids is safe): ",
      last.message()));
}

}  // namespace logbook::store
