// The gRPC EventStore service: adapts proto <-> store. Holds no SQL.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "logbook/service/worker_pool.h"
#include "logbook/store/consumer_groups.h"
#include "logbook/store/event_store.h"
#include "logbook/store/subscription.h"
#include "logbook/v1/event_store.grpc.pb.h"

namespace logbook::service {

class AdminLimiter;
class ConsumerGroupHub;

// Callback-API implementation of logbook.v1.EventStore. Reactions only
// validate and convert; every store call runs on `workers`, so no gRPC thread
// ever blocks on the database. When the workers' queue is full a call fails
// with UNAVAILABLE. Thread-safe; `store` and `workers` must outlive it.
//
// Admin calls (RedactEvent) need the metadata `authorization: Bearer
// <admin_token>`; with an empty admin_token they are refused. A source
// address that fails 10 times within a minute is refused admin calls
// (RESOURCE_EXHAUSTED) for the rest of that minute.
//
// One connection (told apart by its peer address, context->peer()) may
// hold at most max_subscriptions_per_connection open Subscribe calls (0: no
// cap); another fails with RESOURCE_EXHAUSTED.

class EventStoreService final : public logbook::v1::EventStore::CallbackService {
 public:
  // Returns up to `max` events following the previous page of a read,
  // stopping after the one that brings data + metadata to `max_bytes`.
  using FetchPage = std::function<absl::StatusOr<std::vector<store::RecordedEvent>>(
      uint64_t max, size_t max_bytes)>;

  // `groups` and `hub` serve the consumer-group calls.
  EventStoreService(store::EventStore& store, WorkerPool& workers, store::LogTail& tail,
                    store::ConsumerGroups& groups, ConsumerGroupHub& hub,
                    std::string admin_token = "", size_t max_subscriptions_per_connection = 100);
  ~EventStoreService() override;

  grpc::ServerUnaryReactor* Append(grpc::CallbackServerContext* context,
                                   const v1::AppendRequest* request,
                                   v1::AppendResponse* response) override;
  grpc::ServerWriteReactor<v1::ReadResponse>* ReadStream(
      grpc::CallbackServerContext* context, const v1::ReadStreamRequest* request) override;
  grpc::ServerWriteReactor<v1::ReadResponse>* ReadAll(grpc::CallbackServerContext* context,
                                                      const v1::ReadAllRequest* request) override;
  grpc::ServerUnaryReactor* Checkpoint(grpc::CallbackServerContext* context,
                                       const v1::CheckpointRequest* request,
                                       v1::SignedCheckpoint* response) override;
  grpc::ServerUnaryReactor* GetStream(grpc::CallbackServerContext* context,
                                      const v1::GetStreamRequest* request,
                                      v1::StreamInfo* response) override;
  grpc::ServerWriteReactor<v1::SubscribeResponse>* Subscribe(
      grpc::CallbackServerContext* context, const v1::SubscribeRequest* request) override;
  grpc::ServerWriteReactor<v1::VerifyResponse>* Verify(
      grpc::CallbackServerContext* context, const v1::VerifyRequest* request) override;
  grpc::ServerUnaryReactor* DeleteStream(grpc::CallbackServerContext* context,
                                         const v1::DeleteStreamRequest* request,
                                         v1::DeleteStreamResponse* response) override;
  grpc::ServerUnaryReactor* RedactEvent(grpc::CallbackServerContext* context,
                                        const v1::RedactEventRequest* request,
                                        v1::RedactEventResponse* response) override;
  grpc::ServerUnaryReactor* SaveSnapshot(grpc::CallbackServerContext* context,
                                         const v1::SaveSnapshotRequest* request,
                                         v1::SaveSnapshotResponse* response) override;
  grpc::ServerUnaryReactor* LoadSnapshot(grpc::CallbackServerContext* context,
                                         const v1::LoadSnapshotRequest* request,
                                         v1::Snapshot* response) override;

  grpc::ServerUnaryReactor* CreateConsumerGroup(grpc::CallbackServerContext* context,
                                                const v1::CreateConsumerGroupRequest* request,
                                                v1::ConsumerGroupInfo* response) override;
  grpc::ServerUnaryReactor* UpdateConsumerGroup(grpc::CallbackServerContext* context,
                                                const v1::UpdateConsumerGroupRequest* request,
                                                v1::ConsumerGroupInfo* response) override;
  grpc::ServerUnaryReactor* DeleteConsumerGroup(grpc::CallbackServerContext* context,
                                                const v1::DeleteConsumerGroupRequest* request,
                                                v1::DeleteConsumerGroupResponse* response) override;
  grpc::ServerUnaryReactor* ListConsumerGroups(grpc::CallbackServerContext* context,
                                               const v1::ListConsumerGroupsRequest* request,
                                               v1::ListConsumerGroupsResponse* response) override;
  grpc::ServerUnaryReactor* GetConsumerGroup(grpc::CallbackServerContext* context,
                                             const v1::GetConsumerGroupRequest* request,
                                             v1::ConsumerGroupInfo* response) override;
  grpc::ServerBidiReactor<v1::ConsumeRequest, v1::ConsumeResponse>* Consume(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ListParked(grpc::CallbackServerContext* context,
                                      const v1::ListParkedRequest* request,
                                      v1::ListParkedResponse* response) override;
  grpc::ServerUnaryReactor* ReplayParked(grpc::CallbackServerContext* context,
                                         const v1::ReplayParkedRequest* request,
                                         v1::ReplayParkedResponse* response) override;
  grpc::ServerUnaryReactor* DropParked(grpc::CallbackServerContext* context,
                                       const v1::DropParkedRequest* request,
                                       v1::DropParkedResponse* response) override;

  // From now on, new calls fail with UNAVAILABLE; calls already running go on.
  void StartDraining() { draining_ = true; }
  // Calls started and not yet finished.
  int in_flight() const { return in_flight_.load(); }

 private:
  // Validates a read (`converted`: the request's conversion) and streams
  // what `fetch` returns, page by page.
  grpc::ServerWriteReactor<v1::ReadResponse>* StartPagedRead(
      const google::protobuf::Message& request, const absl::Status& converted,
      uint64_t max_count, FetchPage fetch);

  // Finishes a unary call with the status `work` returns, after running it
  // on a worker (it fills in the response). Adds the status's trailers.
  grpc::ServerUnaryReactor* RunUnary(grpc::CallbackServerContext* context,
                                     const google::protobuf::Message& request,
                                     std::function<absl::Status()> work);

  // OK when the call carries the admin token; else UNAUTHENTICATED (no or a
  // malformed authorization header) or PERMISSION_DENIED (wrong token, or
  // admin calls disabled).
  absl::Status CheckAdmin(const grpc::CallbackServerContext& context) const;

  // Counts a new call; false (and the call must be refused) when draining.
  bool BeginCall();
  void EndCall() { --in_flight_; }

  // Counts a subscription of connection `peer`; RESOURCE_EXHAUSTED naming
  // the cap when it has as many as it may.
  absl::Status BeginSubscription(const std::string& peer);
  void EndSubscription(const std::string& peer);

  store::EventStore& store_;
  WorkerPool& workers_;
  store::LogTail& tail_;
  store::ConsumerGroups& groups_;
  ConsumerGroupHub& hub_;
  const std::string admin_token_;  // Empty: admin calls disabled.
  // Failed admin attempts per source address (10 a minute, then refused).
  const std::unique_ptr<AdminLimiter> admin_limiter_;
  std::atomic<bool> draining_{false};
  std::atomic<int> in_flight_{0};
  const size_t max_subscriptions_per_connection_;
  absl::Mutex subscriptions_mu_;
  // Open subscriptions per connection (peer address), those with any.
  std::map<std::string, size_t> subscriptions_ ABSL_GUARDED_BY(subscriptions_mu_);
};

}  // namespace logbook::service
