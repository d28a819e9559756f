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
  // Blocks the next append call until Release() (to let appends queue up).
  void HoldNextAppend();
  void Release();

  int append_calls() const { return append_calls_.load(); }
  int failures() const { return failures_.load(); }

  void Connect() override;
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
  bool hold_next_ ABSL_GUARDED_BY(mu_) = false;
  bool holding_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace logbook::testing
