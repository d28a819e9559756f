// Prometheus metrics of one logbookd (docs/operations.md#metrics), kept
// with prometheus-cpp, and the HTTP endpoint that serves them with the
// probes /healthz and /readyz (cpp-httplib).
//
// Every recording method is thread-safe and cheap (atomic counters; a
// label look-up under prometheus-cpp's family mutex for per-method
// figures), so it may run on gRPC threads.
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
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

  // The exposition text of every metric (text format 0.0.4).
  std::string Render() const;

  // A gRPC interceptor factory that calls CountCall for every RPC; `this`
  // must outlive the server it is given to.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* durations_;
  prometheus::Counter* events_appended_;
  prometheus::Counter* bytes_appended_;
  prometheus::Gauge* subscriptions_open_;
  prometheus::Gauge* consumers_open_;
  prometheus::Counter* auth_failures_;
  prometheus::Family<prometheus::Counter>* quota_refusals_;
};

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
