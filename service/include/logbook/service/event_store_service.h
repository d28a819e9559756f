// The gRPC EventStore service: adapts proto <-> store. Holds no SQL.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "logbook/service/worker_pool.h"
#include "logbook/store/consumer_groups.h"
#include "logbook/store/event_store.h"
#include "logbook/store/subscription.h"
#include "logbook/v1/event_store.grpc.pb.h"

namespace logbook::service {

class Authenticator;
class AuthLimiter;
class QuotaBook;
class ReadRouter;
class Metrics;
class ConsumerGroupHub;
struct Principal;

// Callback-API implementation of logbook.v1.EventStore. Reactions only
// validate and convert; every store call runs on `workers`, so no gRPC thread
// ever blocks on the database. When the workers' queue is full a call fails
// with UNAVAILABLE. Thread-safe; `store` and `workers` must outlive it.
//
// Every call is authenticated by `auth` and needs a role, and calls that
// name a stream need a scope covering it (service/src/auth.h,
// docs/security.md): UNAUTHENTICATED or PERMISSION_DENIED otherwise,
// before anything is read or changed. A source address that fails
// authentication auth_failures_per_minute times within a minute is refused
// (RESOURCE_EXHAUSTED) for the rest of that minute.
//
// One connection (told apart by its peer address, context->peer()) may
// hold at most max_subscriptions_per_connection open Subscribe calls (0: no
// cap); another fails with RESOURCE_EXHAUSTED. So does a Subscribe,
// Consume or Append beyond its principal's quotas (service/src/quotas.h),
// which count over every connection.

class EventStoreService final : public logbook::v1::EventStore::CallbackService {
 public:
  // Returns up to `max` events following the previous page of a read,
  // stopping after the one that brings data + metadata to `max_bytes`.
  using FetchPage = std::function<absl::StatusOr<std::vector<store::RecordedEvent>>(
      uint64_t max, size_t max_bytes)>;

  // `groups` and `hub` serve the consumer-group calls.
  EventStoreService(store::EventStore& store, WorkerPool& workers, store::LogTail& tail,
                    store::ConsumerGroups& groups, ConsumerGroupHub& hub, const Authenticator& auth,
                    Metrics& metrics, size_t max_subscriptions_per_connection = 100,
                    int auth_failures_per_minute = 10, ReadRouter* reads = nullptr);
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
  grpc::ServerUnaryReactor* ListStreams(grpc::CallbackServerContext* context,
                                        const v1::ListStreamsRequest* request,
                                        v1::ListStreamsResponse* response) override;
  grpc::ServerUnaryReactor* ListCategories(grpc::CallbackServerContext* context,
                                           const v1::ListCategoriesRequest* request,
                                           v1::ListCategoriesResponse* response) override;
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
  // what `fetch` returns, page by page, up to `per_message` events per
  // response.
  grpc::ServerWriteReactor<v1::ReadResponse>* StartPagedRead(
      const google::protobuf::Message& request, const absl::Status& converted, uint64_t max_count,
      uint32_t per_message, FetchPage fetch);

  // Finishes a unary call with the status `work` returns, after running it
  // on a worker (it fills in the response). Adds the status's trailers.
  grpc::ServerUnaryReactor* RunUnary(grpc::CallbackServerContext* context,
                                     const google::protobuf::Message& request,
                                     std::function<absl::Status()> work);

  // The caller of `context`'s call (`call` names it), when it holds one of
  // the roles `any_of` and, when `stream_id` is set, a scope covering it;
  // its tenant is the call's (CallTenant of the logbook-tenant metadata).
  // Counts and logs failed authentications per source address.
  absl::StatusOr<Principal> Caller(const grpc::CallbackServerContext& context, uint32_t any_of,
                                   const char* call,
                                   std::optional<absl::string_view> stream_id = std::nullopt);
  // OK when group `group` does not exist or its target lies within the
  // scopes of `caller` (blocks: reads the group when `caller` is scoped).
  absl::Status CheckGroupScope(const Principal& caller, const std::string& group);
  // Finishes a unary call that was refused before it started.
  static grpc::ServerUnaryReactor* Refuse(grpc::CallbackServerContext* context,
                                          const absl::Status& status);

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
  const Authenticator& auth_;
  Metrics& metrics_;
  // Failed authentications per source address (a few a minute, then refused).
  const std::unique_ptr<AuthLimiter> auth_limiter_;
  // What each principal holds against its quotas.
  const std::unique_ptr<QuotaBook> quotas_;
  // Where ReadStream, ReadAll, GetStream and Verify read (replicas or
  // store_): the one given, or one of its own on store_ alone.
  const std::unique_ptr<ReadRouter> own_reads_;
  ReadRouter* const reads_;
  std::atomic<bool> draining_{false};
  std::atomic<int> in_flight_{0};
  const size_t max_subscriptions_per_connection_;
  // store::EventStore::CheckTenantIsolation at start: callers of tenants
  // other than the default one are refused unless it is OK.
  const absl::Status tenant_isolation_;
  absl::Mutex subscriptions_mu_;
  // Open subscriptions per connection (peer address), those with any.
  std::map<std::string, size_t> subscriptions_ ABSL_GUARDED_BY(subscriptions_mu_);
};

}  // namespace logbook::service
