// Prometheus metrics of one logbookd (docs/operations.md#metrics), kept
// with prometheus-cpp, and the HTTP endpoint that serves them with the
// probes /healthz and /readyz (cpp-httplib).
//
// Every recording method is thread-safe and cheap (atomic counters; a
// label look-up under prometheus-cpp's family mutex for per-method
// figures), so it may run on gRPC threads.
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <atomic>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "logbook/store/consumer_groups.h"
#include "logbook/store/observer.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace httplib {
class Server;
}

namespace logbook::service {

enum class QuotaKind;

// The store's figures: group commits and connection pools. Made before the
// store opens (StoreOptions::observer) and given to the server
// (ServerOptions::store_metrics), whose /metrics shows them. Thread-safe.
class StoreMetrics final : public store::StoreObserver, public prometheus::Collectable {
 public:
  StoreMetrics();
  void GroupCommitted(size_t appends, size_t events, absl::Duration queued,
                      absl::Duration wrote) override;
  void ConnectionPoolSized(absl::string_view pool, int size) override;
  void ConnectionAsked(absl::string_view pool, absl::Duration waited, bool leased) override;
  void ConnectionReturned(absl::string_view pool) override;
  std::vector<prometheus::MetricFamily> Collect() const override { return registry_.Collect(); }

 private:
  prometheus::Registry registry_;
  prometheus::Histogram* group_appends_;
  prometheus::Histogram* group_events_;
  prometheus::Histogram* group_queued_;
  prometheus::Histogram* group_wrote_;
  prometheus::Family<prometheus::Histogram>* pool_waits_;
  prometheus::Family<prometheus::Counter>* pool_failures_;
  prometheus::Family<prometheus::Gauge>* pool_in_use_;
  prometheus::Family<prometheus::Gauge>* pool_max_;
};

class Metrics {
 public:
  // build_info carries `version` and `schema_version`.
  Metrics(absl::string_view version, int schema_version);

  // One finished RPC: its full method name ("/logbook.v1.EventStore/Append"),
  // gRPC status code and time from its start to its status.
  void CountCall(absl::string_view method, grpc::StatusCode code, absl::Duration latency);
  // An append stored (not an idempotent retry): its events and their data
  // and metadata bytes.
  void CountAppended(uint64_t events, uint64_t bytes);
  void SubscriptionOpened() { subscriptions_open_->Increment(); }
  void SubscriptionClosed() { subscriptions_open_->Decrement(); }
  void ConsumerOpened() { consumers_open_->Increment(); }
  void ConsumerClosed() { consumers_open_->Decrement(); }
  void CountAuthFailure() { auth_failures_->Increment(); }
  void CountQuotaRefusal(QuotaKind kind);

  // Subscriptions: events sent, and fell_behind marks.
  void CountDelivered(uint64_t events) { subscription_events_->Increment(static_cast<double>(events)); }
  void CountFellBehind() { fell_behind_->Increment(); }
  // A live subscription's last position sent (an event's, or a caught_up
  // or checkpoint mark's), watched from now until Forget for the lag gauge:
  // the head (SetHead's source) less the lowest of them. `position` must
  // stay valid until Forget.
  void Watch(const std::atomic<uint64_t>* position);
  void Forget(const std::atomic<uint64_t>* position);
  // Where /metrics reads the log's head (cheap, never blocking for long).
  void SetHead(std::function<uint64_t()> head);

  // Consumer groups, by key (store::GroupKey; labelled with its name and
  // tenant): deliveries (attempt > 1: redeliveries) and settles.
  void CountGroupDelivered(const std::string& group, uint64_t deliveries, uint64_t redeliveries);
  void CountGroupSettled(const std::string& group, absl::string_view how, uint64_t n);
  // Where /metrics reads every group's state (GetConsumerGroup figures),
  // at most every 10 s: a group's lag counts the events past its frontier.
  void SetGroups(store::ConsumerGroups* groups);

  // A read (a page of ReadStream or ReadAll, GetStream, a Verify, a
  // subscription's catch-up window) served by
  // `database`: "primary" or "replica".
  void CountRead(absl::string_view database);

  // Verify calls: "intact", "broken" (a receipt did not match) or "failed"
  // (no answer: an error, or the caller went away).
  void CountVerification(absl::string_view result);

  // Shown beside this registry's own (StoreMetrics, say).
  void Add(std::shared_ptr<prometheus::Collectable> collectable);

  // The exposition text of every metric (text format 0.0.4).
  std::string Render() const;

  // A gRPC interceptor factory that calls CountCall for every RPC; `this`
  // must outlive the server it is given to.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

 private:
  class GroupGauges;

  // Sets the gauges computed on demand.
  void Refresh() const;

  mutable absl::Mutex mu_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::vector<std::shared_ptr<prometheus::Collectable>> others_ ABSL_GUARDED_BY(mu_);
  prometheus::Counter* subscription_events_;
  prometheus::Counter* fell_behind_;
  prometheus::Gauge* subscription_lag_;
  prometheus::Family<prometheus::Counter>* group_deliveries_;
  prometheus::Family<prometheus::Counter>* group_redeliveries_;
  prometheus::Family<prometheus::Counter>* group_settled_;
  prometheus::Family<prometheus::Counter>* verifications_;
  prometheus::Family<prometheus::Counter>* reads_;
  std::set<const std::atomic<uint64_t>*> watched_ ABSL_GUARDED_BY(mu_);
  std::function<uint64_t()> head_ ABSL_GUARDED_BY(mu_);
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* durations_;
  prometheus::Counter* events_appended_;
  prometheus::Counter* bytes_appended_;
  prometheus::Gauge* subscriptions_open_;
  prometheus::Gauge* consumers_open_;
  prometheus::Counter* auth_failures_;
  prometheus::Family<prometheus::Counter>* quota_refusals_;
};

// The host and port of `listen` (HOST:PORT, [IPv6]:PORT; port 0: any free
// one), or INVALID_ARGUMENT naming `flag`. Pure.
absl::StatusOr<std::pair<std::string, int>> ParseListen(absl::string_view flag,
                                                        const std::string& listen);

// Serves GET /metrics (Metrics::Render), /healthz (200 while the process
// runs) and /readyz (200 when `ready` returns OK, else 503 with its
// message) on its own thread. Stops when destroyed.
class MetricsServer {
 public:
  // `listen` is HOST:PORT (port 0: any free one). UNAVAILABLE when it
  // cannot be bound; INVALID_ARGUMENT when it is not HOST:PORT.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& listen, const Metrics& metrics, std::function<absl::Status()> ready);
  ~MetricsServer();

  int port() const { return port_; }

 private:
  MetricsServer() = default;

  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace logbook::service
