#include "subscription_memory.h"

#include <algorithm>

namespace logbook::store {

size_t EventBytes(const RecordedEvent& e) {
  return sizeof(RecordedEvent) + e.event_id.size() + e.type.size() + e.data.size() +
         e.metadata.size() + e.content_type.size() + e.correlation_id.size() +
         e.causation_id.size() + e.stream_id.size() + e.tenant.size() + e.written_by.size() + e.traceparent.size() +
         (e.redaction_reason ? e.redaction_reason->size() : 0);
}

size_t BatchBytes(const std::vector<RecordedEvent>& events) {
  size_t bytes = sizeof(events);
  for (const auto& e : events) bytes += EventBytes(e);
  return bytes;
}

size_t ReadReservation(size_t max_bytes, uint64_t max_count, size_t max_event_bytes) {
  return sizeof(std::vector<RecordedEvent>) + max_bytes + max_event_bytes +
         static_cast<size_t>(max_count) * kEventOverhead;
}

bool MayStartRead(size_t held, size_t reservation, size_t budget) {
  return held == 0 || held + reservation <= budget;
}

bool TakesLiveBatch(const LiveRoom& r) {
  if (r.events == 0) return true;  // Nothing of it is kept.
  if (r.idle) return true;         // Sent right away; its first message takes it.
  return !r.over_cap && r.queued_events + r.events <= r.max_events &&
         r.held + r.batch_bytes <= r.budget;
}

bool MemoryBudget::Fits(size_t bytes) const { return cap_ == 0 || used_ == 0 || used_ + bytes <= cap_; }

bool MemoryBudget::HasRoom(size_t bytes) {
  absl::MutexLock lock(&mu_);
  return Fits(bytes);
}

bool MemoryBudget::OverCap() {
  absl::MutexLock lock(&mu_);
  return cap_ > 0 && used_ > cap_;
}

bool MemoryBudget::TryReserve(size_t bytes, std::function<void()> wake) {
  absl::MutexLock lock(&mu_);
  if (Fits(bytes)) {
    used_ += bytes;
    return true;
  }
  if (wake) waiters_.push_back(std::move(wake));
  return false;
}

void MemoryBudget::Reserve(size_t bytes) {
  absl::MutexLock lock(&mu_);
  used_ += bytes;
}

void MemoryBudget::Release(size_t bytes) {
  std::vector<std::function<void()>> wake;
  {
    absl::MutexLock lock(&mu_);
    used_ -= std::min(used_, bytes);
    wake.swap(waiters_);
  }
  std::vector<std::function<void()>> refused;
  for (auto& w : wake) {
    if (!executor_(w)) refused.push_back(std::move(w));
  }
  if (!refused.empty()) {
    absl::MutexLock lock(&mu_);
    for (auto& w : refused) waiters_.push_back(std::move(w));
  }
}

size_t MemoryBudget::used() {
  absl::MutexLock lock(&mu_);
  return used_;
}

EventBatch HoldBatch(std::vector<RecordedEvent> events, MemoryBudget& budget, size_t reserved,
                     size_t* bytes) {
  const size_t held = BatchBytes(events);
  if (held > reserved) budget.Reserve(held - reserved);
  if (held < reserved) budget.Release(reserved - held);
  if (bytes != nullptr) *bytes = held;
  return EventBatch(new std::vector<RecordedEvent>(std::move(events)),
                    [&budget, held](const std::vector<RecordedEvent>* batch) {
                      delete batch;
                      budget.Release(held);
                    });
}

}  // namespace logbook::store
