#include "logbook/service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <unistd.h>

#include <climits>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "auth.h"
#include "consumer_group_hub.h"
#include "http_api.h"
#include "logbook/service/event_store_service.h"
#include "logbook/store/log_watcher.h"
#include "logbook/store/migrations.h"
#include "metrics.h"
#include "read_router.h"
#include "spdlog/spdlog.h"
#include "tls.h"

namespace logbook::service {
namespace {

// A duration as a gRPC channel argument: milliseconds, INT_MAX for zero
// (never).
int ChannelMillis(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return INT_MAX;
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(d), INT_MAX));
}

// This process among the logbookd instances sharing a database, as consumer
// groups record it: host:pid:random.
std::string InstanceName() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::random_device random;
  return absl::StrCat(host[0] ? host : "localhost", ":", getpid(), ":",
                      absl::Hex(random() & 0xffff, absl::kZeroPad4));
}

class GrpcServer final : public Server {
 public:
  explicit GrpcServer(const ServerOptions& options)
      : workers_(options.worker_threads, options.max_queued_calls) {}

  absl::Status Start(const ServerOptions& options, store::EventStore& store) {
    if (absl::Status tls = CheckServerTls(options.tls); !tls.ok()) return tls;
    if (options.tls.cert_file.empty() && !options.insecure_listen &&
        !IsLoopbackListen(options.listen)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "refusing to serve plaintext on ", options.listen,
          ", which is not a loopback address: give --tls-cert and --tls-key, or "
          "--insecure-listen to accept that anyone on the network may call"));
    }
    if (options.auth_tokens_file.empty() && options.auth_jwt_keys_file.empty() &&
        !options.insecure_listen && !IsLoopbackListen(options.listen)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "refusing to serve anonymous callers on ", options.listen,
          ", which is not a loopback address: give --auth-tokens FILE or --auth-jwt-key FILE, "
          "or --insecure-listen to accept that anyone on the network may call"));
    }
    if (!options.auth_jwt_keys_file.empty() &&
        (options.auth_jwt_issuer.empty() || options.auth_jwt_audience.empty())) {
      return absl::InvalidArgumentError(
          "--auth-jwt-key needs --auth-jwt-issuer and --auth-jwt-audience: a token of another "
          "issuer or meant for another service must not be accepted");
    }
    auto auth = Authenticator::Create(
        {options.auth_tokens_file, options.admin_token,
         Quotas{options.quota_subscriptions, options.quota_consumers,
                options.quota_appends_in_flight},
         options.auth_jwt_keys_file, options.auth_jwt_issuer, options.auth_jwt_audience});
    if (!auth.ok()) return auth.status();
    auth_ = *std::move(auth);
    metrics_ = std::make_unique<Metrics>(LOGBOOK_VERSION, options.schema_version);
    read_router_ = std::make_unique<ReadRouter>(store, options.replicas, *metrics_);
    store::SubscriptionOptions subscriptions = options.subscriptions;
    if (!options.replicas.empty()) {
      // A catch-up window goes to a replica that has replayed all of it.
      subscriptions.catch_up_store = [router = read_router_.get()](uint64_t until) {
        return &router->For(until);
      };
    }
    auto tail = store::LogTail::Start(
        store, [this](std::function<void()> task) { return workers_.TrySubmit(std::move(task)); },
        options.database_dsn, subscriptions);
    if (!tail.ok()) return tail.status();
    tail_ = *std::move(tail);
    store::StoreOptions group_options;
    group_options.dsn = options.database_dsn;
    group_options.member_timeout = options.member_timeout;
    group_options.observer = options.store_metrics;
    store::ConsumerGroups::LeaseEventsStore lease_events;
    if (!options.replicas.empty()) {
      // A ROUND_ROBIN lease's events come from a replica that has them all.
      lease_events = [router = read_router_.get()](uint64_t through) {
        return &router->For(through);
      };
    }
    auto groups = store::ConsumerGroups::Open(group_options, std::move(lease_events));
    if (!groups.ok()) return groups.status();
    groups_ = *std::move(groups);
    hub_ = std::make_unique<ConsumerGroupHub>(*groups_, InstanceName());
    // New events wake the dispatchers of the groups consumed here.
    group_watcher_ = store::LogWatcher::Start({options.database_dsn},
                                              [this](uint64_t) { hub_->WakeAll(); });
    if (options.store_metrics) metrics_->Add(options.store_metrics);
    metrics_->SetHead([tail = tail_.get()] { return tail->head(); });
    metrics_->SetGroups(groups_.get());
    service_ = std::make_unique<EventStoreService>(store, workers_, *tail_, *groups_, *hub_,
                                                   *auth_, *metrics_,
                                                   options.max_subscriptions_per_connection,
                                                   options.auth_failures_per_minute,
                                                   read_router_.get());
    const store::Limits& limits = store.limits();
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    builder.AddListeningPort(options.listen, MakeServerCredentials(options.tls), &port_);
    builder.RegisterService(service_.get());
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(metrics_->InterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
    // Room for the largest batch plus framing, so that an oversized batch
    // gets the store's precise RESOURCE_EXHAUSTED rather than gRPC's.
    builder.SetMaxReceiveMessageSize(static_cast<int>(limits.max_batch_bytes * 2 + (1 << 20)));
    // Idle connections and dead peers: see ServerOptions.
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                               ChannelMillis(options.idle_connection_timeout));
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, ChannelMillis(options.keepalive_time));
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                               ChannelMillis(options.keepalive_timeout));
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                               ChannelMillis(options.min_client_ping_interval));
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port_ == 0) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen));
    }
    if (!options.metrics_listen.empty()) {
      // Ready: the database answers and has the schema this binary needs.
      auto ready = [&store, dsn = options.database_dsn]() -> absl::Status {
        if (absl::Status s = store.HeadPosition().status(); !s.ok()) return s;
        return store::CheckSchema(dsn, store::EmbeddedMigrations()).status();
      };
      auto metrics_server = MetricsServer::Start(options.metrics_listen, *metrics_, ready);
      if (!metrics_server.ok()) return metrics_server.status();
      metrics_server_ = *std::move(metrics_server);
    }
    if (!options.http_listen.empty()) {
      // In-process: each HTTP request is the gRPC call it stands for, with
      // the interceptors, authentication and limits of any other.
      auto http =
          HttpApi::Start(options.http_listen, server_->InProcessChannel(grpc::ChannelArguments()),
                         options.console_dir);
      if (!http.ok()) return http.status();
      http_api_ = *std::move(http);
    }
    if (options.checkpoint_interval > absl::ZeroDuration()) {
      checkpoints_ = std::thread([this, &store, every = options.checkpoint_interval] {
        SignCheckpoints(store, every);
      });
    }
    return absl::OkStatus();
  }

  ~GrpcServer() override { Shutdown(absl::ZeroDuration()); }

  int port() const override { return port_; }
  int metrics_port() const override {
    return metrics_server_ == nullptr ? 0 : metrics_server_->port();
  }
  int http_port() const override { return http_api_ == nullptr ? 0 : http_api_->port(); }

  absl::StatusOr<size_t> ReloadAuth() override {
    if (absl::Status s = auth_->Reload(); !s.ok()) return s;
    return auth_->size();
  }

  // Drains rather than relying on grpc::Server::Shutdown(deadline) alone,
  // which also waits for idle client connections to close and so would hold
  // every shutdown for the whole deadline while any client is connected.
  void Shutdown(absl::Duration deadline) override {
    if (server_ == nullptr) return;
    metrics_server_.reset();
    http_api_.reset();  // Its requests in progress end first (they call server_).
    stop_checkpoints_.Notify();
    if (checkpoints_.joinable()) checkpoints_.join();
    server_->GetHealthCheckService()->Shutdown();
    service_->StartDraining();
    tail_->EndAll(absl::UnavailableError("server shutting down; resume on another instance"));
    hub_->EndAll(absl::UnavailableError("server shutting down; join again on another instance"));
    const absl::Time give_up = absl::Now() + deadline;
    while (service_->in_flight() > 0 && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    server_->Shutdown(absl::ToChronoTime(absl::Now()));  // Cancels what is left.
    server_->Wait();
    server_.reset();
  }

 private:
  // Every `every` until Shutdown: signs a checkpoint of the log's head, if
  // it moved. Failures are logged and tried again next time.
  void SignCheckpoints(store::EventStore& store, absl::Duration every) {
    uint64_t last_id = 0;
    while (!stop_checkpoints_.WaitForNotificationWithTimeout(every)) {
      absl::StatusOr<store::Checkpoint> c = store.CreateCheckpoint();
      if (!c.ok()) {
        spdlog::warn("cannot sign a checkpoint: {}", std::string(c.status().message()));
      } else if (c->id != last_id) {
        last_id = c->id;
        spdlog::info("signed checkpoint #{} of the log at position {}", c->id, c->log_position);
      }
    }
  }

  // Before workers_: a task still queued at the end may use them.
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<store::ConsumerGroups> groups_;
  std::unique_ptr<ConsumerGroupHub> hub_;
  // Outlives the tail, service_ and server_, which count into it.
  std::unique_ptr<Metrics> metrics_;
  // Where reads go (ServerOptions::replicas); the tail's catch-up reads too.
  std::unique_ptr<ReadRouter> read_router_;
  WorkerPool workers_;
  std::unique_ptr<store::LogTail> tail_;
  std::unique_ptr<store::LogWatcher> group_watcher_;  // Stopped before hub_ goes.
  std::unique_ptr<EventStoreService> service_;
  std::unique_ptr<MetricsServer> metrics_server_;
  std::unique_ptr<HttpApi> http_api_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  absl::Notification stop_checkpoints_;
  std::thread checkpoints_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options,
                                                      store::EventStore& store) {
  auto server = std::make_unique<GrpcServer>(options);
  if (absl::Status s = server->Start(options, store); !s.ok()) return s;
  return server;
}

}  // namespace logbook::service
