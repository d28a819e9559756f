// Subscriptions, without gRPC: each subscriber gets the events of its
// filter in global position order, each once, first read from the table
// (catch-up), then from one live tail that reads every new range of the log
// once for all of them, with a caught_up mark between the two, checkpoints
// while a filter skips events, and a fell_behind mark when it was too slow
// for the live tail (it then reads from the table again). The gRPC reactor
// (service/src/subscribe_reactor.cc) only turns its messages into protos.
//
// Why no event is ever skipped: positions become visible strictly in order
// (logbook.publish: transactions publish in position order), so once the
// head reads H every event at or below H is readable, and a position at or
// below H without an event never gets one (a recorded gap). The tail
// publishes (published, H] only after reading it; a subscription joins live
// only when its cursor has reached the published position, and ignores
// positions at or below its cursor.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "logbook/store/event_store.h"
#include "logbook/store/types.h"

namespace logbook::store {

// Memory is counted as the events take it in memory (the struct and every
// string; see subscription_memory.h). What gRPC holds of a subscription
// besides (the message being written) is at most about two messages of up
// to ~1 MiB each, or one event.
struct SubscriptionOptions {
  // Per subscriber, before it falls behind: events queued for the consumer
  // (a live batch is always accepted when nothing is queued or out).
  size_t max_buffered_events = 1000;
  // Per subscriber: the bytes it may hold: queued events, reads arrived
  // ahead of its cursor, and reads in flight (each counted at the most it
  // may return). At least twice a catch-up read's reservation is used.
  // A retained live batch counts whole, as it keeps the whole batch alive.
  size_t max_buffered_bytes = 4 << 20;
  uint64_t catch_up_page = 500;          // Events per catch-up read, at most.
  size_t catch_up_bytes = 256 << 10;     // Data + metadata per catch-up read (ReadAllQuery::max_bytes).
  uint64_t tail_page = 1000;             // Events per read of the live tail, at most.
  size_t tail_bytes = 512 << 10;         // Data + metadata per read of the live tail.
  // Server-wide, the bytes all subscriptions may hold (0: no cap); each
  // batch counts once, however many subscribers share it. A catch-up read
  // that does not fit waits until memory is given back; a new subscription
  // that would not fit one read fails with RESOURCE_EXHAUSTED. Live batches
  // are taken past it only by subscribers with nothing queued.
  size_t max_memory = size_t{1} << 30;
  absl::Duration checkpoint_interval = absl::Seconds(1);  // Idle checkpoints.
  absl::Duration poll_interval = absl::Seconds(1);        // Head poll without NOTIFY.
  absl::Duration tail_retry_delay = absl::Milliseconds(100);  // After a failed tail read.
  // Where a catch-up read of positions up to `until` goes (a replica that
  // has replayed them all, say); null, or a null result: the tail's store.
  // Called on the executor's threads; may query; must be thread-safe.
  std::function<EventStore*(uint64_t until)> catch_up_store;
};

// Runs blocking work (a database read) on another thread. Returns false
// when it cannot take the work (overloaded): the subscription asking then
// ends with UNAVAILABLE.
using Executor = std::function<bool(std::function<void()>)>;

struct SubscriptionRequest {
  // Whose events (ValidateTenant): the subscription sees no other tenant's.
  std::string tenant = kDefaultTenant;
  // The events wanted; filter.stream_id set: exactly one stream's.
  EventFilter filter;
  enum class Start {
    kBeginning,      // From position 1.
    kAfterPosition,  // After global position `after`.
    kAfterVersion,   // After version `after` of stream filter.stream_id, which it must have.
    kNow,            // After the head when the subscription starts.
  } start = Start::kBeginning;
  uint64_t after = 0;
  // 1: events one per message; more: up to that many consecutive events
  // (and about 1 MiB) per message.
  uint32_t max_events_per_message = 1;
};

// One element of a subscription's messages.
struct SubscriptionItem {
  enum class Kind { kEvent, kCaughtUp, kCheckpoint, kFellBehind } kind = Kind::kEvent;
  // kEvent: the read holding the event, shared with other subscribers.
  std::shared_ptr<const std::vector<RecordedEvent>> batch;
  size_t index = 0;
  uint64_t position = 0;  // The event's, or the mark's: delivered up to here.
  const RecordedEvent& event() const { return (*batch)[index]; }
};

// Who receives a subscription's messages (the gRPC reactor). Its methods
// are called from database and tail threads, never two at once, without
// the subscription's locks held; they must not block.
class SubscriptionConsumer {
 public:
  virtual ~SubscriptionConsumer() = default;
  // Sends `message`: one mark, or a run of events. Must call
  // Subscription::MessageDone once it is delivered or cannot be; Send is not
  // called again before that.
  virtual void Send(std::vector<SubscriptionItem> message) = 0;
  // The subscription is over: no message is out and none will be. Called
  // once, and last. Statuses: those of the reads (e.g. UNAVAILABLE when the
  // database cannot be reached, OUT_OF_RANGE for an after_version the stream
  // lacks), RESOURCE_EXHAUSTED at Start when SubscriptionOptions::max_memory
  // has no room for one more read, CANCELLED when a message could not be
  // delivered, or End's.
  virtual void OnEnded(const absl::Status& status) = 0;
};

// One subscription. Thread-safe.
class Subscription {
 public:
  virtual ~Subscription() = default;
  // Starts delivering (resolves the start, then catches up). Call it once,
  // after keeping the subscription where the consumer's MessageDone calls
  // can reach it. The consumer may be called before it returns (OnEnded at
  // once after EndAll).
  virtual void Start() = 0;
  // The message last sent was delivered (`ok`) or not (the subscription
  // then ends with CANCELLED).
  virtual void MessageDone(bool ok) = 0;
  // Ends the subscription with `status` (the call was cancelled, the
  // server shuts down). Messages not sent yet are dropped.
  virtual void End(const absl::Status& status) = 0;
};

// The shared live tail: one thread reads every new range of the log once,
// every tenant's (ReadAllQuery::tenant kAllTenants, so the store's admin
// connection must be a member of logbook_all_tenants), from the table, and
// hands it to the live subscriptions, each taking its tenant's events; it learns of new
// positions from LISTEN/NOTIFY (LogWatcher), from OnHead, and by polling.
// A failed read is logged and retried every tail_retry_delay; subscriptions
// wait meanwhile and lose nothing. Thread-safe.
class LogTail {
 public:
  // Reads the head and starts the tail thread and a LogWatcher on `dsn`.
  // `store` must outlive the tail; `executor` runs the subscriptions'
  // catch-up reads. UNAVAILABLE when the head cannot be read.
  static absl::StatusOr<std::unique_ptr<LogTail>> Start(EventStore& store, Executor executor,
                                                        const std::string& dsn,
                                                        const SubscriptionOptions& options);
  // Ends every subscription (UNAVAILABLE) and stops the threads.
  virtual ~LogTail() = default;

  // A subscription for `consumer`, which must stay valid until its
  // OnEnded; nothing happens until its Start(). `request` must be valid (the
  // service validates it).
  virtual std::shared_ptr<Subscription> Subscribe(const SubscriptionRequest& request,
                                                  SubscriptionConsumer& consumer) = 0;

  // Ends every subscription with `status`; later ones end with it at once.
  virtual void EndAll(const absl::Status& status) = 0;

  // Subscriptions open now.
  virtual size_t size() = 0;

  // The newest head it knows of. Never blocks for long.
  virtual uint64_t head() = 0;

  // The log's head is at least `head` (an append made through this
  // process, say). Never blocks for long.
  virtual void OnHead(uint64_t head) = 0;
};

}  // namespace logbook::store
