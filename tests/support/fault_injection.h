// Test support: database faults on demand, in the spirit of LevelDB's
// FaultInjectionTestEnv. Each wrapper forwards to a real implementation
// until told to fail, so the code under test meets a real PostgreSQL apart
// from the fault itself.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "group_committer.h"
#include "logbook/store/event_store.h"

namespace logbook::testing {

// Where a FaultInjectingGroupWriter fails a call.
enum class WriterFault {
  kBefore,  // Throws before the call reaches the database: nothing written.
  kAfter,   // Makes the call (it commits), then throws: the outcome is lost,
            // as when the connection breaks during COMMIT.
};

// A GroupWriter (store/src/group_committer.h) over a real one. Thread-safe
// setup; the committer's writer thread calls it.
class FaultInjectingGroupWriter final : public store::GroupWriter {
 public:
  // `throw_fault` throws the exception to inject (e.g. a pqxx::sql_error).
  explicit FaultInjectingGroupWriter(std::unique_ptr<store::GroupWriter> real)
      : real_(std::move(real)) {}

  // The next `calls` append calls (AppendWithKnownHeads and
  // AppendInTransaction) for which `applies` returns true fail at `where`
  // by running `throw_fault`. `applies` sees the stream ids of the call.
  void FailAppends(int calls, WriterFault where, std::function<void()> throw_fault,
                   std::function<bool(const std::vector<std::string>&)> applies = nullptr);
  // Every Connect() throws pqxx::broken_connection until called with false.
  void FailConnects(bool fail);
  // With true, a failed append call also drops the real connection, as a
  // connection that broke would be.
  void DisconnectOnFailure(bool disconnect);
  // Blocks the next append call until Release() (to let appends queue up).
  void HoldNextAppend();
  void Release();

  int append_calls() const { return append_calls_.load(); }
  int failures() const { return failures_.load(); }

  void Connect(const std::string& tenant) override;
  bool connected() const override;
  void Disconnect() override;
  std::optional<store::GroupOutcome> AppendWithKnownHeads(
      const std::vector<const store::AppendInput*>& appends,
      std::map<std::string, store::StreamHead> heads, int64_t recorded_at_micros) override;
  std::optional<store::GroupOutcome> AppendInTransaction(
      const std::vector<const store::AppendInput*>& appends, int64_t not_before_micros) override;

 private:
  // Runs `call` with the faults that apply to `appends`.
  template <typename Call>
  std::optional<store::GroupOutcome> Inject(const std::vector<const store::AppendInput*>& appends,
                                            Call call);

  const std::unique_ptr<store::GroupWriter> real_;
  std::atomic<int> append_calls_{0};
  std::atomic<int> failures_{0};
  mutable absl::Mutex mu_;
  int fail_calls_ ABSL_GUARDED_BY(mu_) = 0;
  WriterFault where_ ABSL_GUARDED_BY(mu_) = WriterFault::kBefore;
  std::function<void()> throw_fault_ ABSL_GUARDED_BY(mu_);
  std::function<bool(const std::vector<std::string>&)> applies_ ABSL_GUARDED_BY(mu_);
  bool fail_connects_ ABSL_GUARDED_BY(mu_) = false;
  bool disconnect_on_failure_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_next_ ABSL_GUARDED_BY(mu_) = false;
  bool holding_ ABSL_GUARDED_BY(mu_) = false;
};

// An EventStore over a real one whose reads fail on demand. Thread-safe.
class FaultInjectingEventStore final : public store::EventStore {
 public:
  explicit FaultInjectingEventStore(store::EventStore& real) : real_(real) {}

  // The next `calls` ReadAll calls for which `applies` returns true (all,
  // without it) return `status` without reaching the database.
  void FailReadAll(int calls, absl::Status status,
                   std::function<bool(const store::ReadAllQuery&)> applies = nullptr);
  // The next `calls` HeadPosition calls return `status`.
  void FailHeadPosition(int calls, absl::Status status);
  // ReadAll calls failed so far.
  int read_all_failures() const { return read_all_failures_.load(); }

  void AppendAsync(absl::string_view stream_id, store::ExpectedVersion expected,
                   std::vector<store::NewEvent> events, store::Writer writer,
                   AppendDone done) override {
    real_.AppendAsync(stream_id, expected, std::move(events), std::move(writer), std::move(done));
  }
  absl::StatusOr<std::vector<store::RecordedEvent>> ReadStream(
      const store::ReadStreamQuery& query) override {
    return real_.ReadStream(query);
  }
  absl::StatusOr<std::vector<store::RecordedEvent>> ReadAll(
      const store::ReadAllQuery& query) override;
  absl::StatusOr<store::StreamInfo> GetStream(
      absl::string_view stream_id, absl::string_view tenant = store::kDefaultTenant) override {
    return real_.GetStream(stream_id, tenant);
  }
  absl::StatusOr<std::vector<store::StreamInfo>> ListStreams(
      const store::ListQuery& query) override {
    return real_.ListStreams(query);
  }
  absl::StatusOr<std::vector<std::string>> ListCategories(const store::ListQuery& query) override {
    return real_.ListCategories(query);
  }
  absl::StatusOr<store::DeleteResult> DeleteStream(absl::string_view stream_id,
                                                   store::ExpectedVersion expected,
                                                   bool tombstone,
                                                   const store::Writer& writer) override {
    return real_.DeleteStream(stream_id, expected, tombstone, writer);
  }
  absl::StatusOr<store::RedactResult> RedactEvent(absl::string_view stream_id,
                                                  uint64_t stream_version,
                                                  absl::string_view reason,
                                                  const store::Writer& writer) override {
    return real_.RedactEvent(stream_id, stream_version, reason, writer);
  }
  absl::StatusOr<store::Snapshot> SaveSnapshot(const store::Snapshot& snapshot) override {
    return real_.SaveSnapshot(snapshot);
  }
  absl::StatusOr<store::Snapshot> LoadSnapshot(const store::SnapshotQuery& query) override {
    return real_.LoadSnapshot(query);
  }
  absl::StatusOr<std::unique_ptr<store::Verification>> StartVerify(
      absl::string_view stream_id, absl::string_view tenant = store::kDefaultTenant) override {
    return real_.StartVerify(stream_id, tenant);
  }
  absl::StatusOr<store::Checkpoint> CreateCheckpoint() override {
    return real_.CreateCheckpoint();
  }
  absl::Status CheckTenantIsolation() override { return real_.CheckTenantIsolation(); }
  absl::StatusOr<store::Checkpoint> LatestCheckpoint() override {
    return real_.LatestCheckpoint();
  }
  absl::StatusOr<uint64_t> HeadPosition() override;
  const store::Limits& limits() const override { return real_.limits(); }

 private:
  store::EventStore& real_;
  std::atomic<int> read_all_failures_{0};
  absl::Mutex mu_;
  int fail_read_all_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status read_all_status_ ABSL_GUARDED_BY(mu_);
  std::function<bool(const store::ReadAllQuery&)> read_all_applies_ ABSL_GUARDED_BY(mu_);
  int fail_head_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status head_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace logbook::testing
