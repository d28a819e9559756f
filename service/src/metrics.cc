#include "metrics.h"

#include <httplib.h>

#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "prometheus/text_serializer.h"
#include "quotas.h"

namespace logbook::service {
namespace {

// RPC latency buckets, seconds: 0.5 ms to 30 s.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* const buckets = new prometheus::Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  return *buckets;
}

const char* QuotaName(QuotaKind kind) {
  switch (kind) {
    case QuotaKind::kSubscriptions:
      return "subscriptions";
    case QuotaKind::kConsumers:
      return "consumers";
    case QuotaKind::kAppendsInFlight:
      break;
  }
  return "appends_in_flight";
}

// Times one RPC from its creation to the status it sends.
class CallInterceptor final : public grpc::experimental::Interceptor {
 public:
  CallInterceptor(Metrics& metrics, const char* method)
      : metrics_(metrics), method_(method == nullptr ? "" : method), start_(absl::Now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      metrics_.CountCall(method_, methods->GetSendStatus().error_code(), absl::Now() - start_);
    }
    methods->Proceed();
  }

 private:
  Metrics& metrics_;
  const std::string method_;
  const absl::Time start_;
};

class CallInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CallInterceptorFactory(Metrics& metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new CallInterceptor(metrics_, info->method());
  }

 private:
  Metrics& metrics_;
};

// gRPC's names of its status codes, as the code label.
const char* CodeName(grpc::StatusCode code) {
  static constexpr const char* kNames[] = {
      "OK",           "CANCELLED",       "UNKNOWN",           "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND",  "ALREADY_EXISTS",    "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",       "UNAVAILABLE",       "DATA_LOSS",
      "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < static_cast<int>(std::size(kNames)) ? kNames[i] : "UNKNOWN";
}

}  // namespace

Metrics::Metrics(absl::string_view version, int schema_version)
    : registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::BuildGauge()
      .Name("logbook_build_info")
      .Help("Always 1; the labels say which logbookd and schema version run")
      .Register(*registry_)
      .Add({{"version", std::string(version)}, {"schema_version", absl::StrCat(schema_version)}})
      .Set(1);
  requests_ = &prometheus::BuildCounter()
                   .Name("logbook_rpc_requests_total")
                   .Help("RPCs finished, by method and gRPC status code")
                   .Register(*registry_);
  durations_ = &prometheus::BuildHistogram()
                    .Name("logbook_rpc_duration_seconds")
                    .Help("Time from an RPC's start to its status, by method (streams: their "
                          "whole life)")
                    .Register(*registry_);
  events_appended_ = &prometheus::BuildCounter()
                          .Name("logbook_events_appended_total")
                          .Help("Events stored by Append (idempotent retries not counted)")
                          .Register(*registry_)
                          .Add({});
  bytes_appended_ = &prometheus::BuildCounter()
                         .Name("logbook_appended_bytes_total")
                         .Help("Data and metadata bytes of the events Append stored")
                         .Register(*registry_)
                         .Add({});
  subscriptions_open_ = &prometheus::BuildGauge()
                             .Name("logbook_subscriptions_open")
                             .Help("Subscribe calls open now")
                             .Register(*registry_)
                             .Add({});
  consumers_open_ = &prometheus::BuildGauge()
                         .Name("logbook_consumers_open")
                         .Help("Consume calls (consumer-group consumers) open now")
                         .Register(*registry_)
                         .Add({});
  auth_failures_ = &prometheus::BuildCounter()
                        .Name("logbook_auth_failures_total")
                        .Help("Calls refused UNAUTHENTICATED, or locked out after too many")
                        .Register(*registry_)
                        .Add({});
  quota_refusals_ = &prometheus::BuildCounter()
                         .Name("logbook_quota_refusals_total")
                         .Help("Calls refused RESOURCE_EXHAUSTED by a principal's quota, by quota")
                         .Register(*registry_);
  for (QuotaKind kind :
       {QuotaKind::kSubscriptions, QuotaKind::kConsumers, QuotaKind::kAppendsInFlight}) {
    quota_refusals_->Add({{"quota", QuotaName(kind)}});
  }
}

void Metrics::CountCall(absl::string_view method, grpc::StatusCode code,
                        absl::Duration latency) {
  const std::string name(method);
  requests_->Add({{"method", name}, {"code", CodeName(code)}}).Increment();
  durations_->Add({{"method", name}}, LatencyBuckets()).Observe(absl::ToDoubleSeconds(latency));
}

void Metrics::CountAppended(uint64_t events, uint64_t bytes) {
  events_appended_->Increment(static_cast<double>(events));
  bytes_appended_->Increment(static_cast<double>(bytes));
}

void Metrics::CountQuotaRefusal(QuotaKind kind) {
  quota_refusals_->Add({{"quota", QuotaName(kind)}}).Increment();
}

std::string Metrics::Render() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
Metrics::InterceptorFactory() {
  return std::make_unique<CallInterceptorFactory>(*this);
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& listen, const Metrics& metrics, std::function<absl::Status()> ready) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-listen: '", listen, "' is not HOST:PORT"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  server->http_ = std::make_unique<httplib::Server>();
  httplib::Server& http = *server->http_;
  http.Get("/metrics", [&metrics](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  http.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  http.Get("/readyz", [ready = std::move(ready)](const httplib::Request&, httplib::Response& res) {
    const absl::Status s = ready();
    res.status = s.ok() ? 200 : 503;
    res.set_content(s.ok() ? std::string("ready\n") : absl::StrCat(s.message(), "\n"),
                    "text/plain");
  });
  server->port_ = port == 0 ? http.bind_to_any_port(host) : (http.bind_to_port(host, port) ? port : -1);
  if (server->port_ <= 0) {
    return absl::UnavailableError(absl::StrCat("--metrics-listen: cannot listen on ", listen));
  }
  server->thread_ = std::thread([&http] { http.listen_after_bind(); });
  return server;
}

MetricsServer::~MetricsServer() {
  if (http_ != nullptr) http_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace logbook::service
