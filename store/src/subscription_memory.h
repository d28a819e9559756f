// What subscriptions hold in memory, counted in bytes: the server-wide cap
// (MemoryBudget), batches of events that give their bytes back when the
// last subscriber lets go of them (HoldBatch), and the pure decisions of
// one subscriber's budget (how big a read is, whether it may start one,
// whether it takes a live batch).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "logbook/store/subscription.h"
#include "logbook/store/types.h"

namespace logbook::store {

// A batch of events read once and shared by the subscriptions it goes to.
using EventBatch = std::shared_ptr<const std::vector<RecordedEvent>>;

// The memory one event takes as a RecordedEvent: the struct and its
// strings' bytes.
size_t EventBytes(const RecordedEvent& event);
// The memory a batch takes: its vector and every event's EventBytes.
size_t BatchBytes(const std::vector<RecordedEvent>& events);

// What a read's result may take before it arrives, counted like
// BatchBytes: `max_bytes` of data and metadata, plus the event that crosses
// it (up to `max_event_bytes`), plus kEventOverhead for each of up to
// `max_count` events.
inline constexpr size_t kEventOverhead = 512;  // sizeof(RecordedEvent) and typical ids.
size_t ReadReservation(size_t max_bytes, uint64_t max_count, size_t max_event_bytes);

// Whether a subscriber that holds `held` bytes (queued, arrived ahead of its
// cursor, and reserved by reads in flight) may start a read reserving
// `reservation` within `budget`. One that holds nothing always may, so a
// read of one event is never refused for its size.
bool MayStartRead(size_t held, size_t reservation, size_t budget);

// Whether a live subscriber takes a batch of the tail (else it falls behind
// and reads from the table once its queue drained).
struct LiveRoom {
  size_t events = 0;           // Events of the batch it would queue.
  size_t batch_bytes = 0;      // The whole batch's BatchBytes: it keeps it alive.
  size_t queued_events = 0;    // Already queued.
  size_t held = 0;             // Bytes it holds already.
  bool idle = false;           // Nothing queued, no message out: it sends the batch at once.
  size_t max_events = 0;       // SubscriptionOptions::max_buffered_events.
  size_t budget = 0;           // Its byte budget.
  bool over_cap = false;       // The server-wide cap is exceeded.
};
bool TakesLiveBatch(const LiveRoom& room);

// Bytes that subscriptions hold, against a server-wide cap. Reads reserve
// their bytes before they start (TryReserve), waiting when the cap is
// reached; batches keep theirs until freed. Thread-safe; its lock is taken
// after any other and never held while calling out. Wake-ups run on
// `executor`, never on the releasing thread, so Release may be called
// under any lock.
class MemoryBudget {
 public:
  // `cap` 0: no cap.
  MemoryBudget(size_t cap, Executor executor) : cap_(cap), executor_(std::move(executor)) {}
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  // Takes `bytes` when they fit under the cap (or nothing is held, so one
  // read larger than the cap cannot wait for ever) and returns true.
  // Otherwise returns false and, if `wake` is set, runs it on the executor
  // once after a later Release (or Kick).
  bool TryReserve(size_t bytes, std::function<void()> wake = nullptr);
  // Takes `bytes` even past the cap (a batch already read).
  void Reserve(size_t bytes);
  // Gives `bytes` back and wakes every waiter. A wake-up the executor
  // refuses stays registered for the next Release or Kick.
  void Release(size_t bytes);
  // Wakes every waiter again (the tail does every second, so a refused
  // wake-up cannot leave a subscription waiting for ever).
  void Kick() { Release(0); }
  // Whether TryReserve(bytes) would succeed now.
  bool HasRoom(size_t bytes);
  // Whether more than the cap is held (live batches may take it there).
  bool OverCap();

  size_t used();
  size_t cap() const { return cap_; }

 private:
  bool Fits(size_t bytes) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t cap_;
  const Executor executor_;
  absl::Mutex mu_;
  size_t used_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::function<void()>> waiters_ ABSL_GUARDED_BY(mu_);
};

// `events` as a batch that holds BatchBytes(events) of `budget` until it is
// freed: `reserved` bytes, already taken for it (by its read), are given
// back or topped up to that. `budget` must outlive the batch.
EventBatch HoldBatch(std::vector<RecordedEvent> events, MemoryBudget& budget, size_t reserved,
                     size_t* bytes);

}  // namespace logbook::store
