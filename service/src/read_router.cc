#include "read_router.h"

#include "metrics.h"

namespace logbook::service {

std::optional<size_t> ChooseReplica(uint64_t needed, const std::vector<uint64_t>& heads,
                                    size_t start) {
  for (size_t k = 0; k < heads.size(); ++k) {
    const size_t i = (start + k) % heads.size();
    if (heads[i] >= needed) return i;
  }
  return std::nullopt;
}

ReadRouter::ReadRouter(store::EventStore& primary, std::vector<store::EventStore*> replicas,
                       Metrics& metrics)
    : primary_(primary),
      replicas_(std::move(replicas)),
      metrics_(metrics),
      heads_(new std::atomic<uint64_t>[replicas_.size()]) {
  for (size_t i = 0; i < replicas_.size(); ++i) heads_[i] = 0;
}

store::EventStore& ReadRouter::For(uint64_t needed) {
  if (replicas_.empty()) return primary_;
  const size_t start = next_.fetch_add(1, std::memory_order_relaxed);
  std::vector<uint64_t> heads(replicas_.size());
  for (size_t i = 0; i < replicas_.size(); ++i) heads[i] = heads_[i].load();
  std::optional<size_t> chosen = ChooseReplica(needed, heads, start);
  if (!chosen) {
    // Ask the replicas how far they are now (a head only grows).
    for (size_t i = 0; i < replicas_.size(); ++i) {
      absl::StatusOr<uint64_t> head = replicas_[i]->HeadPosition();
      if (head.ok() && *head > heads[i]) {
        heads[i] = *head;
        heads_[i].store(*head);
      }
    }
    chosen = ChooseReplica(needed, heads, start);
  }
  metrics_.CountRead(chosen ? "replica" : "primary");
  return chosen ? *replicas_[*chosen] : primary_;
}

}  // namespace logbook::service
