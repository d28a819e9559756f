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

GroupCommitter::GroupCommitter(std::string dsn, size_t writers, size_t max_batch_appends,
                               size_t max_batch_bytes)
    : dsn_(std::move(dsn)),
      max_batch_appends_(max_batch_appends),
      max_batch_bytes_(max_batch_bytes),
      writers_(std::max<size_t>(writers, 1)) {
  for (Writer& w : writers_) threads_.emplace_back([this, &w] { WriterLoop(w); });
}

GroupCommitter::~GroupCommitter() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

void GroupCommitter::Submit(AppendInput append, Done done) {
  auto pending = std::make_unique<Pending>();
  pending->append = std::move(append);
  pending->done = std::move(done);
  absl::MutexLock lock(&mu_);
  queued_events_ += pending->append.events.size();
  queue_.push_back(std::move(pending));
}

GroupCommitter::Batch GroupCommitter::TakeBatch() {
  Batch batch;
  absl::MutexLock lock(&mu_);
  // finished_ when every waiting append's stream was running: wait for one
  // more transaction to finish before looking again.
  std::optional<uint64_t> blocked_at;
  for (;;) {
    struct Ready {
      GroupCommitter* c;
      const std::optional<uint64_t>* blocked_at;
    } ready{this, &blocked_at};
    mu_.Await(absl::Condition(
        +[](Ready* r) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          GroupCommitter* c = r->c;
          if (c->queue_.empty()) return c->stopping_;
          return (c->running_ == 0 || c->queued_events_ >= kParallelEvents) &&
                 *r->blocked_at != c->finished_;
        },
        &ready));
    if (queue_.empty()) return batch;  // Stopping and drained.
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
    // Take what waits, in order, except appends to streams a running
    // transaction writes (and whatever follows them on those streams).
    std::deque<std::unique_ptr<Pending>> left;
    std::set<std::string> skipped, taken;
    size_t bytes = 0;
    while (!queue_.empty()) {
      std::unique_ptr<Pending>& p = queue_.front();
      const std::string& stream = p->append.stream_id;
      const bool full = batch.appends.size() >= max_batch_appends_ ||
                        (!batch.appends.empty() && bytes + p->append.bytes > max_batch_bytes_);
      if (full) break;
      if (running_streams_.count(stream) != 0 || skipped.count(stream) != 0) {
        skipped.insert(stream);
        left.push_back(std::move(p));
      } else {
        bytes += p->append.bytes;
        queued_events_ -= p->append.events.size();
        taken.insert(stream);
        batch.appends.push_back(std::move(p));
      }
      queue_.pop_front();
    }
    while (!left.empty()) {
      queue_.push_front(std::move(left.back()));
      left.pop_back();
    }
    if (batch.appends.empty()) {
      blocked_at = finished_;
      continue;
    }
    last_batch_ = batch.appends.size();
    ++running_;
    std::map<std::string, StreamRow> heads;
    for (const std::string& stream : taken) {
      running_streams_.insert(stream);
      batch.streams.push_back(stream);
      auto it = cache_.streams.find(stream);
      if (it != cache_.streams.end() && it->second.state == StreamState::kActive) {
        heads[stream] = it->second;
      }
    }
    if (heads.size() == taken.size()) {
      batch.heads = std::move(heads);
      batch.recorded_at_micros =
          std::max(absl::ToUnixMicros(absl::Now()), cache_.last_recorded_at_micros);
      cache_.last_recorded_at_micros = batch.recorded_at_micros;
    }
    return batch;
  }
}

void GroupCommitter::WriterLoop(Writer& writer) {
  for (;;) {
    Batch batch = TakeBatch();
    if (batch.appends.empty()) return;
    std::optional<std::map<std::string, StreamRow>> after = RunBatch(writer, batch);
    {
      absl::MutexLock lock(&mu_);
      --running_;
      ++finished_;
      for (const std::string& stream : batch.streams) {
        running_streams_.erase(stream);
        if (!after) cache_.streams.erase(stream);
      }
      if (after) cache_.Remember(*after);
      for (const auto& p : batch.appends) {
        if (p->result.ok()) {
          cache_.last_recorded_at_micros = std::max(cache_.last_recorded_at_micros,
                                                    absl::ToUnixMicros(p->result->committed_at));
        }
      }
    }
    for (auto& p : batch.appends) p->done(std::move(p->result));
  }
}

absl::Status GroupCommitter::Connect(Writer& writer) {
  if (writer.conn != nullptr && writer.conn->is_open()) return absl::OkStatus();
  writer.conn.reset();
  return CatchPqxx("connect to the database", [&]() -> absl::Status {
    writer.conn = std::make_unique<pqxx::connection>(dsn_);
    PrepareWriteStatements(*writer.conn);
    return absl::OkStatus();
  });
}

std::optional<std::map<std::string, StreamRow>> GroupCommitter::RunBatch(Writer& writer,
                                                                        Batch& batch) {
  if (Connect(writer).ok()) {
    try {
      std::vector<const AppendInput*> appends;
      for (const auto& p : batch.appends) appends.push_back(&p->append);
      std::optional<GroupOutcome> outcome;
      if (batch.heads) {
        outcome = TryWriteAppendsFromCache(*writer.conn, appends, *std::move(batch.heads),
                                           batch.recorded_at_micros);
      }
      if (!outcome) {
        pqxx::work tx(*writer.conn);
        outcome = WriteAppends(tx, appends);
        tx.commit();
      }
      for (size_t i = 0; i < appends.size(); ++i) {
        batch.appends[i]->result = std::move(outcome->results[i]);
      }
      return std::move(outcome->streams);
    } catch (...) {
      // Fall through: run each on its own (see the class comment).
      if (!writer.conn->is_open()) writer.conn.reset();
    }
  }
  for (const auto& p : batch.appends) p->result = RunAlone(writer, p->append);
  return std::nullopt;
}

absl::StatusOr<AppendResult> GroupCommitter::RunAlone(Writer& writer, const AppendInput& append) {
  bool sent = false;
  absl::Status last;
  for (int attempt = 0; attempt < 2; ++attempt) {  // A second try on a fresh connection.
    if (absl::Status s = Connect(writer); !s.ok()) {
      last = s;
      continue;
    }
    sent = true;
    absl::StatusOr<AppendResult> result =
        CatchPqxx(Operation(append), [&]() -> absl::StatusOr<AppendResult> {
          for (int race = 1;; ++race) {
            try {
              pqxx::work tx(*writer.conn);
              absl::StatusOr<AppendResult> r = std::move(WriteAppends(tx, {&append}).results[0]);
              tx.commit();
              return r;
            } catch (const pqxx::unique_violation&) {
              // A concurrent transaction stored one of the event ids first:
              // once it has committed, the next try sees them.
              if (race == kRaceRetries) throw;
            } catch (const pqxx::deadlock_detected&) {
              if (race == kRaceRetries) throw;
            }
          }
        });
    if (!absl::IsUnavailable(result.status())) return result;
    last = result.status();
    writer.conn.reset();
  }
  if (!sent) return last;
  return absl::UnknownError(absl::StrCat(
      Operation(append), ": the database connection was lost; the append may or may not be "
                         "stored (retrying with the same event ids is safe): ",
      last.message()));
}

}  // namespace logbook::store
