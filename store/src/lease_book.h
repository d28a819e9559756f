// What one consumer's call holds of a ROUND_ROBIN group's leases: runs of
// fresh events handed out in one claim, recorded in PostgreSQL as a single
// row (consumer_group_leases) instead of a row per event. Which events of a
// lease are settled is known here only, in memory: a lease row goes when
// its last event is settled (acked and counted), or when its deadline
// passes or its consumer leaves (what is open then goes back to the
// group's pending events, each counted as one delivery). An instance that
// dies loses this; another one takes its leases back once they expire,
// every event of them, so what was acked is delivered again
// (at-least-once).
//
// Pure bookkeeping: no clock and no database. Not thread-safe; its owner
// locks.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"

namespace logbook::store {

class LeaseBook {
 public:
  // A lease that left the book: how many of its events were acked, and
  // those still open (none when it completed), in position order.
  struct Closed {
    int64_t lease_id = 0;
    uint64_t acked = 0;
    std::vector<uint64_t> open;
  };

  // Records lease `lease_id` of `positions` (distinct, none held already),
  // due back at `deadline`.
  void Add(int64_t lease_id, const std::vector<uint64_t>& positions, absl::Time deadline);

  // Events open in all leases.
  size_t in_flight() const { return lease_of_.size(); }
  bool empty() const { return leases_.empty(); }
  // The lease holding `position` open, if any.
  std::optional<int64_t> LeaseOf(uint64_t position) const;

  // Settles each of `positions` that is open here (acked: counted as
  // acked; else given up, as for a nack, which the caller records
  // elsewhere); positions not open here are ignored. Returns the leases
  // this completed, which leave the book.
  std::vector<Closed> Settle(const std::vector<uint64_t>& positions, bool acked);
  // Removes and returns the leases whose deadline is at or before `now`.
  std::vector<Closed> Expire(absl::Time now);
  // Removes and returns every lease.
  std::vector<Closed> TakeAll();
  // The earliest deadline, if any lease is held.
  std::optional<absl::Time> NextDeadline() const;

 private:
  struct Lease {
    absl::Time deadline;
    uint64_t acked = 0;
    uint64_t open = 0;
    std::vector<uint64_t> positions;  // All of it, in position order.
  };

  Closed Close(std::map<int64_t, Lease>::iterator it);

  std::map<int64_t, Lease> leases_;
  absl::flat_hash_map<uint64_t, int64_t> lease_of_;  // Open position -> lease.
};

}  // namespace logbook::store
