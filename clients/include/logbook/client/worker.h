// A consumer of a consumer group: joins the group over the Consume stream,
// hands every delivery to a handler, acks or nacks it by what the handler
// returned, and reconnects after outages.
//
//   logbook::Client client(options);
//   logbook::WorkerOptions worker_options;
//   worker_options.group = "emails";
//   worker_options.consumer = "emails-1";
//   logbook::Worker worker(client, worker_options,
//                          [](const logbook::v1::Delivery& d) -> absl::Status {
//                            if (!Send(d.event())) return absl::UnavailableError("smtp down");
//                            return absl::OkStatus();  // Acked.
//                          });
//   absl::Status status = worker.Run();  // Until Stop() or a failure retrying cannot fix.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "logbook/client/client.h"
#include "logbook/v1/event_store.grpc.pb.h"

namespace logbook {

// What a handler returns to ask for something other than a plain retry. Any
// other non-OK status (and an exception the handler throws) nacks the
// delivery with RETRY after the group's backoff, its message as the reason.
//
// Sets the event aside in the group's parked events, with `reason`
// (`logbook group parked`, ReplayParked puts it back).
absl::Status Park(absl::string_view reason);
// Treats the event as handled without acking it (counted as skipped, not acked).
absl::Status Skip(absl::string_view reason);
// Delivers it again after `delay` (at most 1 hour) instead of the group's
// backoff; still parked once the group's max_deliveries is reached.
absl::Status RetryAfter(absl::Duration delay, absl::string_view reason);

struct WorkerOptions {
  std::string group;     // The consumer group to join. Required.
  std::string consumer;  // This consumer's name, unique among the group's connected ones. Required.
  // Unacked deliveries the server may hand this worker at a time. 0 (default):
  // the group's max_in_flight; more than it makes Run() return INVALID_ARGUMENT.
  uint32_t max_in_flight = 0;
  // Acks are sent in batches: at most this many ids in one message
  // (default 100; at most 10,000)...
  size_t ack_batch_size = 100;
  // ...or once the oldest unsent ack waited this long (default 5 ms), or at
  // once when the server would send nothing more until acks arrive (every
  // delivery in flight is handled).
  absl::Duration ack_delay = absl::Milliseconds(5);
  // Deliveries the server may put in one message (join.max_batch; default
  // 100, at most 1,000; 0 or 1: one each). Fewer, bigger messages cost both
  // sides less per event; the handler is still called once per delivery.
  uint32_t max_batch = 100;
  // After Stop(): how long to wait for the server to take the last acks and
  // end the call before cancelling it (default 5 s).
  absl::Duration stop_timeout = absl::Seconds(5);
  // Called on Run()'s thread after every join the server accepted (the
  // first and each after a reconnect), with the instance and the
  // max_in_flight in effect. Optional.
  std::function<void(const v1::ConsumerJoined&)> on_joined;
  // Called on Run()'s thread, for a PER_STREAM group, with the streams this
  // worker owns: after each join and whenever the group's members change.
  // Optional; deliveries come the same without it.
  std::function<void(const v1::ConsumerAssignment&)> on_assignment;
  // Called on Run()'s thread when a connection ended with an error the
  // worker retries, with that error and the wait before the next try.
  // Optional; for logging.
  std::function<void(const absl::Status&, absl::Duration)> on_disconnected;
};

// A worker of one consumer group: one Consume call at a time, deliveries
// handled one at a time, in the order the server sends them.
//
// Thread-safety: Run() is called once, by one thread, which then calls the
// handler and the callbacks of WorkerOptions. Stop() may be called from any
// thread at any time, the handler included, before or during Run().
//
// Failure behaviour:
// - The handler's OK acks the delivery (batched, see WorkerOptions). A
//   non-OK status or a thrown exception nacks it RETRY with the status
//   message (or what()) as the reason, cut to 1,024 bytes; Park(), Skip()
//   and RetryAfter() choose another action.
// - A connection that ends with UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED,
//   RESOURCE_EXHAUSTED, UNKNOWN or INTERNAL, or that the server ends without
//   an error, is opened again after a backoff (ClientOptions initial_backoff,
//   doubling up to max_backoff, reset by each accepted join). The calls wait
//   for the server to be reachable. Acks and nacks not yet sent when a
//   connection ends are dropped: the server delivers those events again
//   (at least once; make the handler idempotent, e.g. by event id). A
//   rejoin that finds the consumer name still connected (ALREADY_EXISTS or
//   FAILED_PRECONDITION before the join is accepted, after an earlier join
//   of this Run() was) is retried the same way: the server may not have
//   seen the dropped call end yet.
// - Any other error ends Run() with it: NOT_FOUND (no such group, or it was
//   deleted), ALREADY_EXISTS or FAILED_PRECONDITION at the first join (the
//   consumer name is connected elsewhere), FAILED_PRECONDITION later (an
//   ack or nack came after the group's ack_timeout_ms gave the delivery to
//   another consumer: a handler must finish well within ack_timeout_ms),
//   INVALID_ARGUMENT (a bad name or max_in_flight), PERMISSION_DENIED, ...
class Worker {
 public:
  using Handler = std::function<absl::Status(const v1::Delivery&)>;

  // `client` must outlive the Worker.
  Worker(Client& client, WorkerOptions options, Handler handler);
  // Stops and waits for Run() to return, if it runs.
  ~Worker();

  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Consumes until Stop() (returns OK) or an error that reconnecting cannot
  // fix (returns it; see the class comment). Blocks; call once.
  absl::Status Run();

  // Ends Run(): a handler call in progress finishes (it is not interrupted)
  // and its ack or nack is sent, the acks not sent yet are flushed, then the
  // call ends; deliveries received but not handed to the handler go back to
  // the group. Returns at once. Idempotent.
  void Stop();

 private:
  class Connection;

  // One Consume call, from join to its end. OK after a graceful stop.
  absl::Status RunConnection(bool* joined);
  // Calls the handler for one delivery and queues its ack or nack.
  void Handle(Connection& connection, const v1::Delivery& delivery);

  Client& client_;
  const WorkerOptions options_;
  const Handler handler_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  Connection* connection_ ABSL_GUARDED_BY(mu_) = nullptr;  // The call in progress.
};

}  // namespace logbook
