// Wires the store, the workers and the gRPC server together.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "logbook/store/event_store.h"

namespace logbook::service {

struct SubscriptionOptions {
  // Per subscriber, before it falls behind: events queued for writing (one
  // live batch of up to tail_page events is always accepted when the queue
  // is empty).
  size_t max_buffered_events = 1000;
  size_t max_buffered_bytes = 8 << 20;   // Per subscriber: data + metadata bytes.
  uint64_t catch_up_page = 500;          // Events per catch-up read.
  uint64_t tail_page = 1000;             // Events per read of the live tail.
  absl::Duration checkpoint_interval = absl::Seconds(1);  // Idle checkpoints.
  absl::Duration poll_interval = absl::Seconds(1);  // Head poll without NOTIFY.
};

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // host:port; port 0 picks a free one.
  int worker_threads = 8;                  // Threads running store calls.
  size_t max_queued_calls = 10000;         // Calls waiting for a worker.
  std::string database_dsn;                // For the subscriptions' LISTEN connection.
  std::string admin_token;                 // Bearer token of admin calls; empty: disabled.
  SubscriptionOptions subscriptions;
};

// A running gRPC server serving logbook.v1.EventStore, grpc.health.v1.Health
// and server reflection. Thread-safe.
class Server {
 public:
  // Starts serving. `store` must outlive the server. UNAVAILABLE when the
  // address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options,
                                                       store::EventStore& store);
  virtual ~Server() = default;

  // The port actually bound.
  virtual int port() const = 0;

  // Stops accepting calls, ends subscriptions with UNAVAILABLE, lets other
  // in-flight calls finish until `deadline`, then cancels the rest.
  // Idempotent.
  virtual void Shutdown(absl::Duration deadline) = 0;
};

}  // namespace logbook::service
