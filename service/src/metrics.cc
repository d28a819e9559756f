#include "metrics.h"

#include <httplib.h>

#include <map>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "logbook/store/status_macros.h"
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

// Group sizes: 1 to 512 appends, 1 to 100,000 events.
const prometheus::Histogram::BucketBoundaries& AppendsBuckets() {
  static const auto* const buckets =
      new prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
  return *buckets;
}
const prometheus::Histogram::BucketBoundaries& EventsBuckets() {
  static const auto* const buckets = new prometheus::Histogram::BucketBoundaries{
      1, 10, 100, 1000, 10000, 100000};
  return *buckets;
}
// Waits, seconds: 0.1 ms to 5 s.
const prometheus::Histogram::BucketBoundaries& WaitBuckets() {
  static const auto* const buckets = new prometheus::Histogram::BucketBoundaries{
      0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5};
  return *buckets;
}

// How often /metrics asks the database for the consumer groups' state.
constexpr absl::Duration kGroupStateInterval = absl::Seconds(10);

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

StoreMetrics::StoreMetrics() {
  group_appends_ = &prometheus::BuildHistogram()
                        .Name("logbook_group_commit_appends")
                        .Help("Appends that shared one group commit")
                        .Register(registry_)
                        .Add({}, AppendsBuckets());
  group_events_ = &prometheus::BuildHistogram()
                       .Name("logbook_group_commit_events")
                       .Help("Events of one group commit")
                       .Register(registry_)
                       .Add({}, EventsBuckets());
  group_queued_ = &prometheus::BuildHistogram()
                       .Name("logbook_group_commit_queued_seconds")
                       .Help("How long the oldest append of a group waited for a writer")
                       .Register(registry_)
                       .Add({}, WaitBuckets());
  group_wrote_ = &prometheus::BuildHistogram()
                      .Name("logbook_group_commit_write_seconds")
                      .Help("How long the database took to store a group")
                      .Register(registry_)
                      .Add({}, LatencyBuckets());
  pool_waits_ = &prometheus::BuildHistogram()
                     .Name("logbook_db_connection_wait_seconds")
                     .Help("How long a caller waited for a pooled connection, by pool")
                     .Register(registry_);
  pool_failures_ = &prometheus::BuildCounter()
                        .Name("logbook_db_connection_failures_total")
                        .Help("Asks for a pooled connection that got none (all busy, or the "
                              "database unreachable), by pool")
                        .Register(registry_);
  pool_in_use_ = &prometheus::BuildGauge()
                      .Name("logbook_db_connections_in_use")
                      .Help("Pooled connections leased now, by pool")
                      .Register(registry_);
  pool_max_ = &prometheus::BuildGauge()
                   .Name("logbook_db_connections_max")
                   .Help("Connections a pool holds at most, by pool")
                   .Register(registry_);
}

void StoreMetrics::ConnectionPoolSized(absl::string_view pool, int size) {
  pool_max_->Add({{"pool", std::string(pool)}}).Set(size);
}

void StoreMetrics::GroupCommitted(size_t appends, size_t events, absl::Duration queued,
                                  absl::Duration wrote) {
  group_appends_->Observe(static_cast<double>(appends));
  group_events_->Observe(static_cast<double>(events));
  group_queued_->Observe(absl::ToDoubleSeconds(queued));
  group_wrote_->Observe(absl::ToDoubleSeconds(wrote));
}

void StoreMetrics::ConnectionAsked(absl::string_view pool, absl::Duration waited, bool leased) {
  const std::string name(pool);
  pool_waits_->Add({{"pool", name}}, WaitBuckets()).Observe(absl::ToDoubleSeconds(waited));
  if (leased) {
    pool_in_use_->Add({{"pool", name}}).Increment();
  } else {
    pool_failures_->Add({{"pool", name}}).Increment();
  }
}

void StoreMetrics::ConnectionReturned(absl::string_view pool) {
  pool_in_use_->Add({{"pool", std::string(pool)}}).Decrement();
}

// The consumer groups' state as gauges, read from the database at most
// every kGroupStateInterval; the families are built at each scrape, so a
// deleted group disappears.
class Metrics::GroupGauges final : public prometheus::Collectable {
 public:
  explicit GroupGauges(store::ConsumerGroups& groups) : groups_(groups) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    absl::MutexLock lock(&mu_);
    if (absl::Now() >= read_at_ + kGroupStateInterval) {
      absl::StatusOr<std::vector<store::GroupInfo>> infos = ReadEveryTenant();
      if (infos.ok()) infos_ = *std::move(infos);  // Else the last ones stay.
      read_at_ = absl::Now();
    }
    auto family = [](const char* name, const char* help) {
      prometheus::MetricFamily f;
      f.name = name;
      f.help = help;
      f.type = prometheus::MetricType::Gauge;
      return f;
    };
    std::vector<prometheus::MetricFamily> out = {
        family("logbook_consumer_group_lag_events",
               "Events of the group's target past its checkpoint"),
        family("logbook_consumer_group_lag_seconds",
               "Age of the oldest event past the group's checkpoint"),
        family("logbook_consumer_group_in_flight", "Deliveries not yet settled"),
        family("logbook_consumer_group_parked", "Parked events"),
        family("logbook_consumer_group_members", "Live members")};
    for (const store::GroupInfo& g : infos_) {
      const double values[] = {static_cast<double>(g.lag_events), absl::ToDoubleSeconds(g.lag),
                               static_cast<double>(g.in_flight), static_cast<double>(g.parked),
                               static_cast<double>(g.members.size())};
      for (size_t i = 0; i < out.size(); ++i) {
        prometheus::ClientMetric m;
        m.label.push_back({"group", g.definition.name});
        m.label.push_back({"tenant", g.definition.tenant});
        m.gauge.value = values[i];
        out[i].metric.push_back(std::move(m));
      }
    }
    return out;
  }

 private:
  absl::StatusOr<std::vector<store::GroupInfo>> ReadEveryTenant() const {
    std::vector<store::GroupInfo> out;
    LOGBOOK_ASSIGN_OR_RETURN(std::vector<std::string> tenants, groups_.Tenants());
    for (const std::string& tenant : tenants) {
      LOGBOOK_ASSIGN_OR_RETURN(std::vector<store::GroupInfo> infos, groups_.List(tenant));
      for (store::GroupInfo& info : infos) out.push_back(std::move(info));
    }
    return out;
  }

  store::ConsumerGroups& groups_;
  mutable absl::Mutex mu_;
  mutable absl::Time read_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  mutable std::vector<store::GroupInfo> infos_ ABSL_GUARDED_BY(mu_);
};

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
  subscription_events_ = &prometheus::BuildCounter()
                              .Name("logbook_subscription_events_delivered_total")
                              .Help("Events Subscribe calls sent")
                              .Register(*registry_)
                              .Add({});
  fell_behind_ = &prometheus::BuildCounter()
                      .Name("logbook_subscription_fell_behind_total")
                      .Help("Subscriptions too slow for the live tail, told fell_behind and "
                            "reading on from the table")
                      .Register(*registry_)
                      .Add({});
  subscription_lag_ = &prometheus::BuildGauge()
                           .Name("logbook_subscription_lag_events")
                           .Help("The log's head less the lowest position a live subscription "
                                 "has been sent (0 with none)")
                           .Register(*registry_)
                           .Add({});
  group_deliveries_ = &prometheus::BuildCounter()
                           .Name("logbook_consumer_group_deliveries_total")
                           .Help("Deliveries sent to consumers here, by group")
                           .Register(*registry_);
  group_redeliveries_ = &prometheus::BuildCounter()
                             .Name("logbook_consumer_group_redeliveries_total")
                             .Help("Deliveries here of an event delivered before, by group")
                             .Register(*registry_);
  group_settled_ = &prometheus::BuildCounter()
                        .Name("logbook_consumer_group_settled_total")
                        .Help("Deliveries consumers here acked or nacked, by group and how "
                              "(ack, retry, park, skip)")
                        .Register(*registry_);
  verifications_ = &prometheus::BuildCounter()
                        .Name("logbook_verifications_total")
                        .Help("Verify calls by result: intact, broken (a receipt did not match), "
                              "failed (no answer)")
                        .Register(*registry_);
  for (const char* result : {"intact", "broken", "failed"}) {
    verifications_->Add({{"result", result}});
  }
  reads_ = &prometheus::BuildCounter()
                .Name("logbook_reads_total")
                .Help("Reads (pages of ReadStream and ReadAll, GetStream, Verify, catch-up "
                      "windows) by the database that served them: primary or replica "
                      "(--replica-database)")
                .Register(*registry_);
  for (const char* database : {"primary", "replica"}) reads_->Add({{"database", database}});
}

void Metrics::Watch(const std::atomic<uint64_t>* position) {
  absl::MutexLock lock(&mu_);
  watched_.insert(position);
}

void Metrics::Forget(const std::atomic<uint64_t>* position) {
  absl::MutexLock lock(&mu_);
  watched_.erase(position);
}

void Metrics::SetHead(std::function<uint64_t()> head) {
  absl::MutexLock lock(&mu_);
  head_ = std::move(head);
}

namespace {

// A group's labels: its name and its tenant (store::GroupKey).
std::map<std::string, std::string> GroupLabels(const std::string& key) {
  return {{"group", store::NameOfGroup(key)}, {"tenant", store::TenantOfGroup(key)}};
}

}  // namespace

void Metrics::CountGroupDelivered(const std::string& group, uint64_t deliveries,
                                  uint64_t redeliveries) {
  group_deliveries_->Add(GroupLabels(group)).Increment(static_cast<double>(deliveries));
  if (redeliveries > 0) {
    group_redeliveries_->Add(GroupLabels(group)).Increment(static_cast<double>(redeliveries));
  }
}

void Metrics::CountGroupSettled(const std::string& group, absl::string_view how, uint64_t n) {
  std::map<std::string, std::string> labels = GroupLabels(group);
  labels.emplace("how", std::string(how));
  group_settled_->Add(labels).Increment(static_cast<double>(n));
}

void Metrics::SetGroups(store::ConsumerGroups* groups) {
  if (groups == nullptr) return;
  Add(std::make_shared<GroupGauges>(*groups));
}

void Metrics::CountRead(absl::string_view database) {
  reads_->Add({{"database", std::string(database)}}).Increment();
}

void Metrics::CountVerification(absl::string_view result) {
  verifications_->Add({{"result", std::string(result)}}).Increment();
}

void Metrics::Add(std::shared_ptr<prometheus::Collectable> collectable) {
  absl::MutexLock lock(&mu_);
  others_.push_back(std::move(collectable));
}

void Metrics::Refresh() const {
  absl::MutexLock lock(&mu_);
  if (!head_) return;
  const uint64_t head = head_();
  uint64_t lag = 0;
  for (const std::atomic<uint64_t>* p : watched_) {
    const uint64_t at = p->load(std::memory_order_relaxed);
    lag = std::max(lag, head > at ? head - at : 0);
  }
  subscription_lag_->Set(static_cast<double>(lag));
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
  Refresh();
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  std::vector<std::shared_ptr<prometheus::Collectable>> others;
  {
    absl::MutexLock lock(&mu_);
    others = others_;
  }
  for (const auto& c : others) {
    std::vector<prometheus::MetricFamily> more = c->Collect();
    families.insert(families.end(), std::make_move_iterator(more.begin()),
                    std::make_move_iterator(more.end()));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
Metrics::InterceptorFactory() {
  return std::make_unique<CallInterceptorFactory>(*this);
}

absl::StatusOr<std::pair<std::string, int>> ParseListen(absl::string_view flag,
                                                        const std::string& listen) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": '", listen, "' is not HOST:PORT"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::make_pair(host, port);
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& listen, const Metrics& metrics, std::function<absl::Status()> ready) {
  absl::StatusOr<std::pair<std::string, int>> where = ParseListen("--metrics-listen", listen);
  if (!where.ok()) return where.status();
  const auto& [host, port] = *where;
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
