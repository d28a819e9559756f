// The implementation of logbook/store/subscription.h: LiveTail (the shared
// tail) and Feed (one subscription). Lock order: a LiveTail's mutex before a
// Feed's; consumers are called holding neither.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "logbook/store/log_watcher.h"
#include "logbook/store/subscription.h"
#include "subscription_memory.h"

namespace logbook::store {

class LiveTail;

// Whether `event` passes `filter` (empty fields select everything).
bool Matches(const EventFilter& filter, const RecordedEvent& event);

// One subscription. Catch-up reads run on the executor; live batches
// arrive from the tail's thread (Deliver); messages go out one at a time
// (Send, then MessageDone). Without a filter, catch-up reads windows of
// page_ positions, two at once: the database answers one while the other is
// sent; with a filter, one read at a time takes the next page_ matching
// events. Every read is bounded in bytes too (read_bytes_); one that stops
// there leaves the rest of its range as a hole, read next.
//
// Memory: held_ counts what it holds (queued batches, reads arrived ahead of
// the cursor, reservations of reads in flight) and stays within budget_: a
// read starts only when its reservation fits (MayStartRead), and only with
// less than a page queued; a second read only while nothing waits ahead of
// the cursor. A read also reserves its bytes from the tail's MemoryBudget
// when it starts; when that is used up it leaves its range as a hole and
// waits (waiting_) until a Release calls Retry.
//
// Owned through shared_ptrs: the consumer's, and each executor task's while
// it runs; the tail holds weak ones. Thread-safe through mu_.
class Feed final : public Subscription, public std::enable_shared_from_this<Feed> {
 public:
  Feed(LiveTail& tail, const SubscriptionRequest& request, SubscriptionConsumer& consumer);

  void Start() override;
  void MessageDone(bool ok) override;
  void End(const absl::Status& status) override;

  // From the tail's thread: the log grew to `to`, `batch` (taking
  // `batch_bytes`) holding the new events. False when this subscription
  // overflowed and left the live feed.
  bool Deliver(const EventBatch& batch, size_t batch_bytes, uint64_t to);
  // From the tail's thread, every checkpoint interval.
  void Tick();
  bool IsLive();
  // From LiveTail::TryGoLive, under its lock: goes live unless `published`
  // is past the cursor (a stale one) or the subscription is ending.
  bool GoLive(uint64_t published);

 private:
  struct Item {
    SubscriptionItem::Kind kind;
    EventBatch batch;
    size_t index;
    uint64_t position;
    size_t charge = 0;  // Bytes of held_ given back when it leaves the queue.
  };

  // Runs `step` on the executor; on refusal ends the subscription.
  void Schedule(std::function<void()> step) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues the events of `batch` from `index` on that pass the filter and
  // lie past the cursor; the last one queued carries `bytes`. Returns how
  // many it queued.
  size_t EnqueueBatch(const EventBatch& batch, size_t bytes, bool filtered)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeCheckpoint() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // On the executor: turns the start into a cursor, then catches up.
  void Resolve();
  // On the executor: reads the next range of the backlog, or goes live.
  void Fetch();
  // Fetch's work: reserves memory for the read (or waits for it) and reads.
  void ReadNext();
  // Called by the MemoryBudget once memory was given back: tries again.
  void Retry();
  bool ShouldFetch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartFetches() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends the next message, starts the next catch-up step, or finishes.
  void Pump();
  // The next message's items: one mark, one event, or (batching) the
  // consecutive events at the head of the queue.
  std::vector<SubscriptionItem> TakeMessage() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeFinish();
  void Fail(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  LiveTail& tail_;
  SubscriptionConsumer& consumer_;
  const SubscriptionRequest request_;
  EventFilter filter_;
  // Whether the subscription wants `e`, a live event of any tenant's.
  bool Wants(const RecordedEvent& e) const {
    return e.tenant == request_.tenant && Matches(filter_, e);
  }
  bool windowed_ = false;  // No filter: reads by windows of positions, two at once.
  uint64_t page_ = 0;
  size_t read_bytes_ = 0;   // max_bytes of a catch-up read.
  size_t reservation_ = 0;  // What a catch-up read reserves.
  size_t budget_ = 0;       // held_ stays within this.
  const uint32_t max_per_message_;

  absl::Mutex mu_;
  uint64_t cursor_ ABSL_GUARDED_BY(mu_) = 0;    // Every event up to here is queued or skipped.
  uint64_t reported_ ABSL_GUARDED_BY(mu_) = 0;  // The consumer was told up to here.
  absl::Time last_checkpoint_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::deque<Item> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_events_ ABSL_GUARDED_BY(mu_) = 0;
  size_t held_ ABSL_GUARDED_BY(mu_) = 0;           // Bytes held; see the class comment.
  bool waiting_ ABSL_GUARDED_BY(mu_) = false;      // For memory: a wake-up is registered.
  bool live_ ABSL_GUARDED_BY(mu_) = false;
  bool caught_up_sent_ ABSL_GUARDED_BY(mu_) = false;
  bool sending_ ABSL_GUARDED_BY(mu_) = false;      // A message is out.
  int fetches_ ABSL_GUARDED_BY(mu_) = 0;           // Executor steps queued or running.
  int reads_ ABSL_GUARDED_BY(mu_) = 0;             // Of them, reads holding a reservation.
  uint64_t requested_ ABSL_GUARDED_BY(mu_) = 0;    // Reads cover everything up to here.
  uint64_t known_until_ ABSL_GUARDED_BY(mu_) = 0;  // The newest readable() a Fetch saw.
  struct Arrived {
    uint64_t to;  // The read covered (its key, to].
    EventBatch batch;
    size_t bytes;
  };
  std::map<uint64_t, Arrived> arrived_ ABSL_GUARDED_BY(mu_);  // Reads ahead of the cursor.
  // Ranges (key, value] below requested_ that a read left unread (it stopped
  // at its byte bound); read before anything new.
  std::map<uint64_t, uint64_t> holes_ ABSL_GUARDED_BY(mu_);
  bool drain_before_live_ ABSL_GUARDED_BY(mu_) = false;  // Caught up; the queue must drain.
  bool ending_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status end_status_ ABSL_GUARDED_BY(mu_);
};

class LiveTail final : public LogTail {
 public:
  LiveTail(EventStore& store, Executor executor, SubscriptionOptions options);
  ~LiveTail() override;

  // Reads the head and starts the tail thread and the watcher.
  absl::Status Start(const std::string& dsn);

  std::shared_ptr<Subscription> Subscribe(const SubscriptionRequest& request,
                                          SubscriptionConsumer& consumer) override;
  void EndAll(const absl::Status& status) override;
  size_t size() override;
  uint64_t head() override { return readable(); }
  void OnHead(uint64_t head) override;

  // For Feed:
  // Every event up to here is committed and readable (the newest head heard
  // of, at least the published position).
  uint64_t readable();
  // The status EndAll was called with, if it was.
  std::optional<absl::Status> ended();
  bool TryGoLive(const std::shared_ptr<Feed>& feed, uint64_t cursor);
  void Leave(Feed* feed);
  EventStore& store() { return store_; }
  // Where a catch-up read of positions up to `until` goes
  // (SubscriptionOptions::catch_up_store).
  EventStore& CatchUpStore(uint64_t until) {
    EventStore* chosen = options_.catch_up_store ? options_.catch_up_store(until) : nullptr;
    return chosen != nullptr ? *chosen : store_;
  }
  const Executor& executor() const { return executor_; }
  const SubscriptionOptions& options() const { return options_; }
  MemoryBudget& memory() { return memory_; }

 private:
  void TailLoop();
  std::vector<std::shared_ptr<Feed>> LiveFeeds();

  EventStore& store_;
  const Executor executor_;
  const SubscriptionOptions options_;
  MemoryBudget memory_;

  absl::Mutex mu_;
  uint64_t published_ ABSL_GUARDED_BY(mu_) = 0;  // The tail has read up to here.
  uint64_t head_ ABSL_GUARDED_BY(mu_) = 0;       // Newest position heard of.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Status> ended_ ABSL_GUARDED_BY(mu_);
  std::map<Feed*, std::weak_ptr<Feed>> all_ ABSL_GUARDED_BY(mu_);
  std::map<Feed*, std::weak_ptr<Feed>> live_ ABSL_GUARDED_BY(mu_);
  std::thread tail_;
  std::unique_ptr<LogWatcher> watcher_;
};

}  // namespace logbook::store
