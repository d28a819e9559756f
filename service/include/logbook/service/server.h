// Wires the store, the workers and the gRPC server together.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "logbook/store/event_store.h"
#include "logbook/store/subscription.h"

namespace logbook::service {

// TLS of the gRPC port (docs/security.md); no certificate: plaintext.
class StoreMetrics;  // service/src/metrics.h

struct ServerTls {
  std::string cert_file;       // PEM certificate chain served.
  std::string key_file;        // Its PEM private key.
  std::string client_ca_file;  // Set: clients must present a certificate it signed (mTLS).
};

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // host:port; port 0 picks a free one.
  // TLS only when tls.cert_file is set (no plaintext port beside it).
  // Without TLS, Start refuses a listen address that is not loopback
  // unless insecure_listen.
  ServerTls tls;
  bool insecure_listen = false;
  int worker_threads = 8;                  // Threads running store calls.
  size_t max_queued_calls = 10000;         // Calls waiting for a worker.
  std::string database_dsn;                // For the subscriptions' LISTEN connection.
  // Bearer token of a principal "admin" with every role; empty: none.
  std::string admin_token;
  // Principals by token digest and client certificate (service/src/auth.h).
  // Empty: callers without a token are anonymous (every role but admin),
  // and Start refuses a listen address that is not loopback unless
  // insecure_listen.
  std::string auth_tokens_file;
  // A source address that fails authentication this often within a minute
  // is refused every call for the rest of that minute.
  int auth_failures_per_minute = 10;
  // Quotas of a principal whose tokens-file line sets none, and of the
  // admin token's and the anonymous caller's (0: no limit): open Subscribe
  // calls, open Consume calls, Append calls not yet answered.
  // JWT callers (docs/security.md): PEM public keys or a JWKS file, and
  // the issuer and audience every token must carry (both required with
  // the keys). Set: callers must authenticate, as with auth_tokens_file.
  std::string auth_jwt_keys_file;
  std::string auth_jwt_issuer;
  std::string auth_jwt_audience;
  // Prometheus metrics at /metrics, with /healthz and /readyz, on this
  // HOST:PORT (docs/operations.md#metrics); empty: none.
  std::string metrics_listen;
  // The HTTP/JSON API (docs/http-api.md) on this HOST:PORT; empty: none.
  std::string http_listen;
  // Serve the web console's files from this folder rather than the copy
  // built in (for working on the console); empty: the built-in copy.
  std::string console_dir;
  // Hot standbys (logbookd --replica-database) that serve ReadStream,
  // ReadAll, GetStream, Verify and subscriptions' catch-up when they have
  // replayed as far as this instance knows the log to be
  // (docs/operations.md#reads-from-replicas).
  // They must outlive the server. Empty: the primary serves every read.
  std::vector<store::EventStore*> replicas;
  // The schema version the database has (build_info).
  int schema_version = 0;
  // The store's figures (group commits, connection pools), shown with the
  // rest: the StoreOptions::observer the store was opened with. Null: none.
  std::shared_ptr<StoreMetrics> store_metrics;
  // Consumer-group members not renewed within this are gone (3 s to 1 h).
  absl::Duration member_timeout = absl::Seconds(10);
  uint32_t quota_subscriptions = 0;
  uint32_t quota_consumers = 0;
  uint32_t quota_appends_in_flight = 0;
  store::SubscriptionOptions subscriptions;
  // Signs a checkpoint of the log this often (EventStore::CreateCheckpoint;
  // the store needs a signing key). Zero: only on demand.
  absl::Duration checkpoint_interval = absl::ZeroDuration();
  // Open Subscribe calls one connection (peer address) may hold; 0: no cap.
  size_t max_subscriptions_per_connection = 100;
  // A connection without a call for this long is closed (GOAWAY; clients
  // reconnect when they next call). Zero: never.
  absl::Duration idle_connection_timeout = absl::Minutes(5);
  // With no traffic on a connection for keepalive_time, the server pings the
  // client; without an answer within keepalive_timeout it closes the
  // connection, which ends its calls (a dead peer's subscriptions). Zero:
  // no pings.
  absl::Duration keepalive_time = absl::Minutes(1);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  // Clients' own keepalive pings are accepted this often, with or without
  // calls (gRPC's default, 5 minutes, would close the connection of a
  // client pinging every minute).
  absl::Duration min_client_ping_interval = absl::Seconds(10);
};

// A running gRPC server serving logbook.v1.EventStore, grpc.health.v1.Health
// and server reflection. Thread-safe.
class Server {
 public:
  // Starts serving. `store` must outlive the server. UNAVAILABLE when the
  // address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options,
                                                       store::EventStore& store);
  virtual ~Server() = default;

  // The port actually bound.
  virtual int port() const = 0;
  // The metrics endpoint's port (ServerOptions::metrics_listen); 0: none.
  virtual int metrics_port() const = 0;
  // The HTTP API's port (ServerOptions::http_listen); 0: none.
  virtual int http_port() const = 0;

  // Reads the tokens file again (SIGHUP); on an error the principals stay
  // as they were. Returns how many there are now.
  virtual absl::StatusOr<size_t> ReloadAuth() = 0;

  // Stops accepting calls, ends subscriptions with UNAVAILABLE, lets other
  // in-flight calls finish until `deadline`, then cancels the rest.
  // Idempotent.
  virtual void Shutdown(absl::Duration deadline) = 0;
};

}  // namespace logbook::service
