// What one consumer's call holds of a PER_STREAM group's runs
// (migrations/0023): a row of consumer_group_pending that stands for up to
// kRunEvents events of one stream, claimed as one. The call gets them one
// at a time, in version order, the next only when the one before is acked;
// this book knows which one is out, so that an ack costs no database round
// trip. The row stays the session's until the run is done (then it goes),
// handed back whole (the rest of it waits for another claim), or split: the
// event out leaves it as a row of its own, held by the session, and the
// rest becomes a free run, so that nacks, timeouts and leaving work on
// single events as they always have.
//
// Pure bookkeeping: no clock and no database. Not thread-safe; its owner
// locks.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "logbook/store/consumer_groups.h"

namespace logbook::store {

class RunBook {
 public:
  // A run's row, rewritten when its event out leaves it (Split): that event
  // becomes the row `key` moves to, `position`, delivered `attempts` times
  // and due back at `deadline`; the rest, if any, a free run from
  // `rest_from` of `rest_events` events.
  struct Split {
    int64_t key = 0;
    uint64_t position = 0;
    uint32_t attempts = 0;
    absl::Time deadline;
    uint64_t rest_from = 0;  // 0: nothing after it.
    uint32_t rest_events = 0;
  };
  // A run whose row goes (done: rest_from 0) or is handed back whole from
  // `rest_from` on (free, `rest_events` events, nothing of it delivered).
  struct Ended {
    int64_t key = 0;
    uint64_t rest_from = 0;
    uint32_t rest_events = 0;
  };
  // What acking an event out did.
  struct Acked {
    std::vector<Ended> ended;
    uint64_t acked = 0;  // Of the positions given, how many were out here.
  };

  // Records the run of row `key`, whose first event was delivered
  // (`first`, at attempt `attempt`, due back at `deadline`) and whose
  // other events are `rest`, in version order; the row is the session's
  // until `row_until`.
  void Add(int64_t key, const GroupDelivery& first, absl::Time deadline, absl::Time row_until,
           std::vector<RecordedEvent> rest);

  size_t runs() const { return runs_.size(); }
  // Whether `position` is the event out of a run here.
  bool Holds(uint64_t position) const { return out_.contains(position); }

  // Acks each of `positions` that is out here (others are ignored): its
  // run's next event becomes ready to send (TakeReady), or the run ends:
  // done, or handed back when Truncate asked for that.
  Acked Ack(const std::vector<uint64_t>& positions);
  // The runs' next events ready to send, now out (delivered once, due at
  // now + ack_timeout), of runs whose row is the session's long enough for
  // that (until at least now + ack_timeout + kRowMargin); the others wait
  // for Renewed.
  std::vector<GroupDelivery> TakeReady(absl::Time now, absl::Duration ack_timeout);
  // Splits the runs whose event out is one of `positions`.
  std::vector<Split> SplitAt(const std::vector<uint64_t>& positions);
  // Splits the runs whose event out is past its deadline at `now`.
  std::vector<Split> Expire(absl::Time now);
  // Splits every run (an event ready and not sent leaves as one delivered
  // `attempts` 0 times).
  std::vector<Split> TakeAll();
  // Each run ends after its event out: the live members changed, and the
  // rest of it goes back, to whoever hashing gives it to now.
  void Truncate();
  // The rows to renew at `now`: those held until before now + ack_timeout
  // + kRenewAhead.
  std::vector<int64_t> ToRenew(absl::Time now, absl::Duration ack_timeout) const;
  // The rows `keys` are the session's until `until`; the runs of the
  // others given to ToRenew's answer are gone (another instance took them
  // back) and leave the book.
  void Renewed(const std::vector<int64_t>& asked, const std::vector<int64_t>& renewed,
               absl::Time until);
  // When something is next due: an event out reaching its deadline, a row
  // to renew, or a ready event (now).
  std::optional<absl::Time> NextDue(absl::Duration ack_timeout) const;

  // A ready event is sent only while its row stays the session's at least
  // this long after its deadline; rows are renewed this long before that.
  static constexpr absl::Duration kRowMargin = absl::Seconds(1);
  static constexpr absl::Duration kRenewAhead = absl::Seconds(5);

 private:
  struct Run {
    std::deque<RecordedEvent> rest;  // Not yet sent, in version order.
    uint64_t out = 0;                // Position of the event out; 0: none.
    uint32_t attempt = 0;            // Its attempt.
    absl::Time deadline;             // Its deadline.
    absl::Time row_until;
    bool truncated = false;
  };

  Split SplitRun(std::map<int64_t, Run>::iterator it);

  std::map<int64_t, Run> runs_;                 // By row key.
  absl::flat_hash_map<uint64_t, int64_t> out_;  // Event out -> row key.
};

}  // namespace logbook::store
