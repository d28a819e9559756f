// Subscriptions: catch-up from the table, then live from a shared tail.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "logbook/service/server.h"
#include "logbook/service/worker_pool.h"
#include "logbook/store/event_store.h"
#include "logbook/store/log_watcher.h"
#include "logbook/v1/event_store.pb.h"

namespace logbook::service {

class Subscription;

// Reads every new range of the log once, from the table, and hands it to the
// live subscriptions; each one catches up on its own first.
//
// Why no event is ever skipped: positions become visible strictly in order
// (migrations/0005: transactions publish in position order), so once the
// head reads H every event at or below H is readable, and a position at or
// below H without an event never gets one (a recorded gap). The tail
// publishes (published, H] only after reading it; a subscription joins live
// only when its cursor has reached the published position, and ignores
// positions at or below its cursor.
//
// Thread-safe. Owns the tail thread and the log watcher. Lock order: the
// hub's mutex before a subscription's; gRPC calls are made holding neither.
class SubscriptionHub {
 public:
  SubscriptionHub(store::EventStore& store, WorkerPool& workers, std::string dsn,
                  SubscriptionOptions options);
  ~SubscriptionHub();

  // Reads the head and starts the tail thread and the watcher.
  absl::Status Start();

  // A reactor serving `request`, which must be valid (see ValidateSubscribe).
  // `on_done` runs when the call is over.
  grpc::ServerWriteReactor<v1::SubscribeResponse>* Subscribe(const v1::SubscribeRequest& request,
                                                             std::function<void()> on_done);

  // Ends every subscription with `status`; later ones are refused with it.
  void EndAll(const grpc::Status& status);

  // Subscriptions open now.
  size_t size();

  // The log's head is at least `head` (from NOTIFY, polling, or an append
  // made through this server). Never blocks for long.
  void OnHead(uint64_t head);

  // The status EndAll was called with, if it was.
  std::optional<grpc::Status> ended();

  // For Subscription: every event up to here is committed and readable (the
  // newest head heard of, at least the published position).
  uint64_t readable();
  bool TryGoLive(const std::shared_ptr<Subscription>& subscription, uint64_t cursor);
  void Leave(Subscription* subscription);
  store::EventStore& store() { return store_; }
  WorkerPool& workers() { return workers_; }
  const SubscriptionOptions& options() const { return options_; }

 private:
  void TailLoop();
  std::vector<std::shared_ptr<Subscription>> LiveSnapshot();

  store::EventStore& store_;
  WorkerPool& workers_;
  const std::string dsn_;
  const SubscriptionOptions options_;

  absl::Mutex mu_;
  uint64_t published_ ABSL_GUARDED_BY(mu_) = 0;  // The tail has read up to here.
  uint64_t head_ ABSL_GUARDED_BY(mu_) = 0;       // Newest position heard of.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> ended_ ABSL_GUARDED_BY(mu_);
  std::map<Subscription*, std::weak_ptr<Subscription>> all_ ABSL_GUARDED_BY(mu_);
  std::map<Subscription*, std::weak_ptr<Subscription>> live_ ABSL_GUARDED_BY(mu_);
  std::thread tail_;
  std::unique_ptr<store::LogWatcher> watcher_;
};

// INVALID_ARGUMENT naming the field when a Subscribe request is malformed.
absl::Status ValidateSubscribe(const store::Limits& limits, const v1::SubscribeRequest& request);

}  // namespace logbook::service
