#include "fault_injection.h"

#include <pqxx/except>

namespace logbook::testing {

void FaultInjectingGroupWriter::FailAppends(
    int calls, WriterFault where, std::function<void()> throw_fault,
    std::function<bool(const std::vector<std::string>&)> applies) {
  absl::MutexLock lock(&mu_);
  fail_calls_ = calls;
  where_ = where;
  throw_fault_ = std::move(throw_fault);
  applies_ = std::move(applies);
}

void FaultInjectingGroupWriter::FailConnects(bool fail) {
  absl::MutexLock lock(&mu_);
  fail_connects_ = fail;
}

void FaultInjectingGroupWriter::DisconnectOnFailure(bool disconnect) {
  absl::MutexLock lock(&mu_);
  disconnect_on_failure_ = disconnect;
}

void FaultInjectingGroupWriter::HoldNextAppend() {
  absl::MutexLock lock(&mu_);
  hold_next_ = true;
}

void FaultInjectingGroupWriter::Release() {
  absl::MutexLock lock(&mu_);
  hold_next_ = false;
  holding_ = false;
}

void FaultInjectingGroupWriter::Connect(const std::string& tenant) {
  {
    absl::MutexLock lock(&mu_);
    if (fail_connects_) {
      ++failures_;
      throw pqxx::broken_connection("injected: could not connect to server");
    }
  }
  real_->Connect(tenant);
}

bool FaultInjectingGroupWriter::connected() const { return real_->connected(); }

void FaultInjectingGroupWriter::Disconnect() { real_->Disconnect(); }

template <typename Call>
std::optional<store::GroupOutcome> FaultInjectingGroupWriter::Inject(
    const std::vector<const store::AppendInput*>& appends, Call call) {
  ++append_calls_;
  std::vector<std::string> streams;
  for (const store::AppendInput* a : appends) streams.push_back(a->stream_id);
  std::function<void()> fault;
  WriterFault where = WriterFault::kBefore;
  bool disconnect = false;
  {
    absl::MutexLock lock(&mu_);
    if (hold_next_) {
      hold_next_ = false;
      holding_ = true;
      mu_.Await(absl::Condition(
          +[](bool* holding) { return !*holding; }, &holding_));
    }
    if (fail_calls_ > 0 && (applies_ == nullptr || applies_(streams))) {
      --fail_calls_;
      fault = throw_fault_;
      where = where_;
      disconnect = disconnect_on_failure_;
    }
  }
  if (fault && disconnect) {
    auto real_fault = std::move(fault);
    fault = [this, real_fault] {
      real_->Disconnect();
      real_fault();
    };
  }
  if (fault && where == WriterFault::kBefore) {
    ++failures_;
    fault();
  }
  std::optional<store::GroupOutcome> outcome = call();
  if (fault) {
    ++failures_;
    fault();
  }
  return outcome;
}

std::optional<store::GroupOutcome> FaultInjectingGroupWriter::AppendWithKnownHeads(
    const std::vector<const store::AppendInput*>& appends,
    std::map<std::string, store::StreamHead> heads, int64_t recorded_at_micros) {
  return Inject(appends, [&] {
    return real_->AppendWithKnownHeads(appends, std::move(heads), recorded_at_micros);
  });
}

std::optional<store::GroupOutcome> FaultInjectingGroupWriter::AppendInTransaction(
    const std::vector<const store::AppendInput*>& appends, int64_t not_before_micros) {
  return Inject(appends, [&] { return real_->AppendInTransaction(appends, not_before_micros); });
}

void FaultInjectingEventStore::FailReadAll(
    int calls, absl::Status status, std::function<bool(const store::ReadAllQuery&)> applies) {
  absl::MutexLock lock(&mu_);
  fail_read_all_ = calls;
  read_all_status_ = std::move(status);
  read_all_applies_ = std::move(applies);
}

void FaultInjectingEventStore::FailHeadPosition(int calls, absl::Status status) {
  absl::MutexLock lock(&mu_);
  fail_head_ = calls;
  head_status_ = std::move(status);
}

absl::StatusOr<std::vector<store::RecordedEvent>> FaultInjectingEventStore::ReadAll(
    const store::ReadAllQuery& query) {
  {
    absl::MutexLock lock(&mu_);
    if (fail_read_all_ > 0 && (read_all_applies_ == nullptr || read_all_applies_(query))) {
      --fail_read_all_;
      ++read_all_failures_;
      return read_all_status_;
    }
  }
  return real_.ReadAll(query);
}

absl::StatusOr<uint64_t> FaultInjectingEventStore::HeadPosition() {
  {
    absl::MutexLock lock(&mu_);
    if (fail_head_ > 0) {
      --fail_head_;
      return head_status_;
    }
  }
  return real_.HeadPosition();
}

}  // namespace logbook::testing
