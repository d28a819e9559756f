#include "lease_book.h"

#include <algorithm>
#include <utility>

namespace logbook::store {

void LeaseBook::Add(int64_t lease_id, const std::vector<uint64_t>& positions,
                    absl::Time deadline) {
  Lease& lease = leases_[lease_id];
  lease.deadline = deadline;
  lease.positions = positions;
  std::sort(lease.positions.begin(), lease.positions.end());
  for (uint64_t p : lease.positions) {
    if (lease_of_.emplace(p, lease_id).second) ++lease.open;
  }
}

std::optional<int64_t> LeaseBook::LeaseOf(uint64_t position) const {
  auto it = lease_of_.find(position);
  if (it == lease_of_.end()) return std::nullopt;
  return it->second;
}

std::vector<LeaseBook::Closed> LeaseBook::Settle(const std::vector<uint64_t>& positions,
                                                 bool acked) {
  std::vector<Closed> closed;
  for (uint64_t p : positions) {
    auto at = lease_of_.find(p);
    if (at == lease_of_.end()) continue;
    auto it = leases_.find(at->second);
    lease_of_.erase(at);
    if (acked) ++it->second.acked;
    if (--it->second.open == 0) closed.push_back(Close(it));
  }
  return closed;
}

std::vector<LeaseBook::Closed> LeaseBook::Expire(absl::Time now) {
  std::vector<Closed> closed;
  for (auto it = leases_.begin(); it != leases_.end();) {
    auto next = std::next(it);
    if (it->second.deadline <= now) closed.push_back(Close(it));
    it = next;
  }
  return closed;
}

std::vector<LeaseBook::Closed> LeaseBook::TakeAll() {
  std::vector<Closed> closed;
  while (!leases_.empty()) closed.push_back(Close(leases_.begin()));
  return closed;
}

std::optional<absl::Time> LeaseBook::NextDeadline() const {
  std::optional<absl::Time> next;
  for (const auto& [id, lease] : leases_) {
    if (!next || lease.deadline < *next) next = lease.deadline;
  }
  return next;
}

LeaseBook::Closed LeaseBook::Close(std::map<int64_t, Lease>::iterator it) {
  Closed c{it->first, it->second.acked, {}};
  for (uint64_t p : it->second.positions) {
    auto at = lease_of_.find(p);
    if (at != lease_of_.end() && at->second == it->first) {
      c.open.push_back(p);
      lease_of_.erase(at);
    }
  }
  leases_.erase(it);
  return c;
}

}  // namespace logbook::store
