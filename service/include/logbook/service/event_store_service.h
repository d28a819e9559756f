// The gRPC EventStore service: adapts proto <-> store. Holds no SQL.
#pragma once

#include "logbook/service/worker_pool.h"
#include "logbook/store/event_store.h"
#include "logbook/v1/event_store.grpc.pb.h"

namespace logbook::service {

// Callback-API implementation of logbook.v1.EventStore. Reactions only
// validate and convert; every store call runs on `workers`, so no gRPC thread
// ever blocks on the database. When the workers' queue is full a call fails
// with UNAVAILABLE. Thread-safe; `store` and `workers` must outlive it.
class EventStoreService final : public logbook::v1::EventStore::CallbackService {
 public:
  EventStoreService(store::EventStore& store, WorkerPool& workers)
      : store_(store), workers_(workers) {}

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

 private:
  store::EventStore& store_;
  WorkerPool& workers_;
};

}  // namespace logbook::service
