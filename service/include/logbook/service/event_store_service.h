// The gRPC EventStore service: adapts proto <-> store. Holds no SQL.
#pragma once

#include <atomic>
#include <functional>

#include "logbook/service/worker_pool.h"
#include "logbook/store/event_store.h"
#include "logbook/v1/event_store.grpc.pb.h"

namespace logbook::service {

// Callback-API implementation of logbook.v1.EventStore. Reactions only
// validate and convert; every store call runs on `workers`, so no gRPC thread
// ever blocks on the database. When the workers' queue is full a call fails
// with UNAVAILABLE. Thread-safe; `store` and `workers` must outlive it.
class SubscriptionHub;

class EventStoreService final : public logbook::v1::EventStore::CallbackService {
 public:
  // Returns up to `max` events following the previous page of a read.
  using FetchPage = std::function<absl::StatusOr<std::vector<store::RecordedEvent>>(uint64_t max)>;

  EventStoreService(store::EventStore& store, WorkerPool& workers, SubscriptionHub& hub)
      : store_(store), workers_(workers), hub_(hub) {}

  grpc::ServerUnaryReactor* Append(grpc::CallbackServerContext* context,
                                   const v1::AppendRequest* request,
                                   v1::AppendResponse* response) override;
  grpc::ServerWriteReactor<v1::ReadResponse>* ReadStream(
      grpc::CallbackServerContext* context, const v1::ReadStreamRequest* request) override;
  grpc::ServerWriteReactor<v1::ReadResponse>* ReadAll(grpc::CallbackServerContext* context,
                                                      const v1::ReadAllRequest* request) override;
  grpc::ServerUnaryReactor* GetStream(grpc::CallbackServerContext* context,
                                      const v1::GetStreamRequest* request,
                                      v1::StreamInfo* response) override;
  grpc::ServerWriteReactor<v1::SubscribeResponse>* Subscribe(
      grpc::CallbackServerContext* context, const v1::SubscribeRequest* request) override;

  // From now on, new calls fail with UNAVAILABLE; calls already running go on.
  void StartDraining() { draining_ = true; }
  // Calls started and not yet finished.
  int in_flight() const { return in_flight_.load(); }

 private:

  // Validates a read and streams what `fetch` returns, page by page.
  grpc::ServerWriteReactor<v1::ReadResponse>* StartPagedRead(
      const google::protobuf::Message& request, uint64_t max_count, FetchPage fetch);

  // Counts a new call; false (and the call must be refused) when draining.
  bool BeginCall();
  void EndCall() { --in_flight_; }

  store::EventStore& store_;
  WorkerPool& workers_;
  SubscriptionHub& hub_;
  std::atomic<bool> draining_{false};
  std::atomic<int> in_flight_{0};
};

}  // namespace logbook::service
