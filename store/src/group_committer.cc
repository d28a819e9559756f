#include "group_committer.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "connection_pool.h"
#include "pg_errors.h"
#include "spdlog/spdlog.h"

namespace logbook::store {
namespace {

std::string Operation(const AppendInput& a) {
  return absl::StrCat("append to stream '", a.stream_id, "'");
}

// A stream as the committer's cache and running set know it: its tenant's.
std::string StreamKey(const std::string& tenant, const std::string& stream_id) {
  return absl::StrCat(tenant, absl::string_view("\0", 1), stream_id);
}

class PgGroupWriter final : public GroupWriter {
 public:
  explicit PgGroupWriter(std::string dsn) : dsn_(std::move(dsn)) {}

  void Connect(const std::string& tenant) override {
    if (!connected()) {
      conn_.reset();
      auto conn = std::make_unique<pqxx::connection>(dsn_);
      PrepareWriteStatements(*conn);
      conn_ = std::move(conn);
      tenant_.clear();
    }
    if (tenant_ != tenant) {
      tenant_.clear();
      // Never "*": every append's tenant is a valid name (ValidateWriter).
      if (absl::Status set = SetSessionTenant(*conn_, tenant); !set.ok()) {
        throw std::logic_error(std::string(set.message()));
      }
      tenant_ = tenant;
    }
  }
  bool connected() const override { return conn_ != nullptr && conn_->is_open(); }
  void Disconnect() override { conn_.reset(); }

  std::optional<GroupOutcome> AppendWithKnownHeads(const std::vector<const AppendInput*>& appends,
                                                   std::map<std::string, StreamHead> heads,
                                                   int64_t recorded_at_micros) override {
    return store::AppendWithKnownHeads(*conn_, appends, std::move(heads), recorded_at_micros);
  }

  std::optional<GroupOutcome> AppendInTransaction(const std::vector<const AppendInput*>& appends,
                                                  int64_t not_before_micros) override {
    pqxx::work tx(*conn_);
    std::optional<GroupOutcome> outcome = AppendLoadingHeads(tx, appends, not_before_micros);
    if (outcome) tx.commit();
    return outcome;
  }

 private:
  const std::string dsn_;
  std::unique_ptr<pqxx::connection> conn_;
  std::string tenant_;  // The session's logbook.tenant.
};

}  // namespace

std::unique_ptr<GroupWriter> NewPgGroupWriter(std::string dsn) {
  return std::make_unique<PgGroupWriter>(std::move(dsn));
}

GroupCommitter::GroupCommitter(const WriterFactory& make_writer, size_t writers,
                               size_t max_batch_appends, size_t max_batch_bytes,
                               StoreObserver* observer)
    : max_batch_appends_(max_batch_appends),
      max_batch_bytes_(max_batch_bytes),
      observer_(observer) {
  for (size_t i = 0; i < std::max<size_t>(writers, 1); ++i) writers_.push_back(make_writer());
  for (auto& w : writers_) threads_.emplace_back([this, &w] { WriterLoop(*w); });
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
  pending->queued_at = absl::Now();
  absl::MutexLock lock(&mu_);
  queued_events_ += pending->append.events.size();
  queue_.push_back(std::move(pending));
}

GroupCommitter::Batch GroupCommitter::TakeBatch() {
  Batch batch;
  absl::MutexLock lock(&mu_);
  // finished_ when every waiting append's stream was running: wait for one
  // more group to finish before looking again.
  std::optional<uint64_t> blocked_at;
  for (;;) {
    auto ready = [this, &blocked_at]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      if (queue_.empty()) return stopping_;
      return (running_ == 0 || queued_events_ >= kParallelEvents) && blocked_at != finished_;
    };
    mu_.Await(absl::Condition(&ready));
    if (queue_.empty()) return batch;  // Stopping and drained.
    // The callers answered last time usually come straight back: wait a
    // moment for them so they share this group instead of the next.
    if (last_batch_ >= kWaitForReturningCallers) {
      auto returned = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || queue_.size() >= last_batch_;
      };
      mu_.AwaitWithTimeout(absl::Condition(&returned), kMaxWait);
    }
    // Take what waits, in order, except appends to streams a running group
    // writes (and whatever follows them on those streams).
    std::deque<std::unique_ptr<Pending>> left;
    std::set<std::string> skipped, taken;
    size_t bytes = 0;
    while (!queue_.empty()) {
      std::unique_ptr<Pending>& p = queue_.front();
      const std::string stream = StreamKey(p->append.writer.tenant, p->append.stream_id);
      const bool full = batch.appends.size() >= max_batch_appends_ ||
                        (!batch.appends.empty() && bytes + p->append.bytes > max_batch_bytes_);
      if (full) break;
      if (batch.appends.empty()) batch.tenant = p->append.writer.tenant;
      if (p->append.writer.tenant != batch.tenant || running_streams_.count(stream) != 0 ||
          skipped.count(stream) != 0) {
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
    std::map<std::string, StreamHead> heads;  // By stream id: one tenant's.
    const size_t key_prefix = batch.tenant.size() + 1;
    for (const std::string& stream : taken) {
      running_streams_.insert(stream);
      batch.streams.push_back(stream);
      auto it = cache_.streams.find(stream);
      if (it != cache_.streams.end() && it->second.state == StreamState::kActive) {
        heads[stream.substr(key_prefix)] = it->second;
      }
    }
    batch.recorded_at_micros =
        std::max(absl::ToUnixMicros(absl::Now()), cache_.last_recorded_at_micros);
    if (heads.size() == taken.size()) {
      batch.heads = std::move(heads);
      cache_.last_recorded_at_micros = batch.recorded_at_micros;
    }
    return batch;
  }
}

void GroupCommitter::WriterLoop(GroupWriter& writer) {
  for (;;) {
    Batch batch = TakeBatch();
    if (batch.appends.empty()) return;
    const absl::Time started = absl::Now();
    std::optional<std::map<std::string, StreamHead>> after = RunBatch(writer, batch);
    if (observer_ != nullptr) {
      absl::Time oldest = started;
      size_t events = 0;
      for (const auto& p : batch.appends) {
        oldest = std::min(oldest, p->queued_at);
        events += p->append.events.size();
      }
      observer_->GroupCommitted(batch.appends.size(), events, started - oldest,
                                absl::Now() - started);
    }
    {
      absl::MutexLock lock(&mu_);
      --running_;
      ++finished_;
      for (const std::string& stream : batch.streams) {
        running_streams_.erase(stream);
        if (!after) cache_.streams.erase(stream);
      }
      if (after) {
        std::map<std::string, StreamHead> keyed;
        for (auto& [id, head] : *after) keyed.emplace(StreamKey(batch.tenant, id), std::move(head));
        cache_.Remember(keyed);
      }
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

std::optional<std::map<std::string, StreamHead>> GroupCommitter::RunBatch(GroupWriter& writer,
                                                                         Batch& batch) {
  std::vector<const AppendInput*> appends;
  for (const auto& p : batch.appends) appends.push_back(&p->append);
  std::optional<std::map<std::string, StreamHead>> after;
  bool sent = false;  // The group reached the database.
  const absl::Status failed = CatchPqxx(
      absl::StrCat("append a group of ", appends.size()), [&]() -> absl::Status {
        writer.Connect(batch.tenant);
        sent = true;
        std::optional<GroupOutcome> outcome;
        if (batch.heads) {
          outcome = writer.AppendWithKnownHeads(appends, *std::move(batch.heads),
                                                batch.recorded_at_micros);
        }
        if (!outcome) outcome = writer.AppendInTransaction(appends, batch.recorded_at_micros);
        if (!outcome) {
          return absl::AbortedError("a concurrent writer stored one of its event ids first");
        }
        for (size_t i = 0; i < appends.size(); ++i) {
          batch.appends[i]->result = std::move(outcome->results[i]);
        }
        after = std::move(outcome->streams);
        return absl::OkStatus();
      });
  if (failed.ok()) return after;
  // Lost races are part of the job; anything else is worth an operator's eye.
  if (absl::IsAborted(failed)) {
    spdlog::info("{}; running each append alone", std::string(failed.message()));
  } else {
    spdlog::warn("{}; running each append alone", std::string(failed.message()));
  }
  if (!writer.connected()) writer.Disconnect();
  // A connection lost once the group was sent leaves its commit in doubt.
  const bool in_doubt = sent && (absl::IsUnavailable(failed) || absl::IsUnknown(failed));
  for (const auto& p : batch.appends) {
    p->result = RunAlone(writer, p->append, batch.recorded_at_micros, in_doubt);
  }
  return std::nullopt;
}

absl::StatusOr<AppendResult> GroupCommitter::RunAlone(GroupWriter& writer,
                                                      const AppendInput& append,
                                                      int64_t not_before_micros, bool in_doubt) {
  bool sent = in_doubt;
  absl::Status last;
  for (int attempt = 0; attempt < 2; ++attempt) {  // A second try on a fresh connection.
    absl::Status connected = CatchPqxx("connect to the database", [&]() -> absl::Status {
      writer.Connect(append.writer.tenant);
      return absl::OkStatus();
    });
    if (!connected.ok()) {
      last = connected;
      continue;
    }
    sent = true;
    absl::StatusOr<AppendResult> result =
        CatchPqxx(Operation(append), [&]() -> absl::StatusOr<AppendResult> {
          for (int race = 1;; ++race) {
            try {
              std::optional<GroupOutcome> outcome =
                  writer.AppendInTransaction({&append}, not_before_micros);
              if (outcome) return std::move(outcome->results[0]);
            } catch (const pqxx::unique_violation&) {
              // A concurrent transaction stored one of the event ids first:
              // once it has committed, the next try sees them.
              if (race == kRaceRetries) throw;
            } catch (const pqxx::deadlock_detected&) {
              if (race == kRaceRetries) throw;
            }
            if (race == kRaceRetries) {
              return absl::AbortedError(absl::StrCat(
                  Operation(append), ": lost a race with a concurrent writer; re-read and retry"));
            }
          }
        });
    if (!absl::IsUnavailable(result.status())) return result;
    last = result.status();
    writer.Disconnect();
  }
  if (!sent) return last;
  return absl::UnknownError(absl::StrCat(
      Operation(append), ": the database connection was lost; the append may or may not be "
                         "stored (retrying with the same event ids is safe): ",
      last.message()));
}

}  // namespace logbook::store
