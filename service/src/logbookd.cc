// logbookd: the Logbook gRPC server. Parses options, checks the schema, wires
// the store into the server and waits for SIGTERM/SIGINT.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <sstream>

#include <jemalloc/jemalloc.h>

#include "logbook/service/server.h"
#include "logbook/store/event_store.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "logbook/store/migrations.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"
#include "json_log.h"
#include "metrics.h"
#include "tls.h"

// jemalloc reads this at start-up: a background thread purges freed pages
// within about a second (dirty_decay_ms), straight back to the system
// (muzzy_decay_ms 0: no lazy MADV_FREE), so the memory of ended
// subscriptions leaves logbookd's RSS in seconds, not at the next
// allocation burst. MALLOC_CONF in the environment still overrides it.
extern "C" {
const char* malloc_conf = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";
}

namespace {

// How jemalloc is set up, as read back from it: "background_thread true,
// dirty_decay_ms 1000, muzzy_decay_ms 0".
std::string AllocatorSettings() {
  bool background = false;
  ssize_t dirty = -1, muzzy = -1;
  size_t size = sizeof(background);
  mallctl("opt.background_thread", &background, &size, nullptr, 0);
  size = sizeof(dirty);
  mallctl("opt.dirty_decay_ms", &dirty, &size, nullptr, 0);
  size = sizeof(muzzy);
  mallctl("opt.muzzy_decay_ms", &muzzy, &size, nullptr, 0);
  return "background_thread " + std::string(background ? "true" : "false") +
         ", dirty_decay_ms " + std::to_string(dirty) + ", muzzy_decay_ms " +
         std::to_string(muzzy);
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil is built with Mutex deadlock detection on: every
  // acquisition, gRPC's internal ones included, updates a global lock-order
  // graph (and a cycle would abort the server). A debugging aid; the tests
  // keep it on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  logbook::service::ServerOptions server_options;
  logbook::store::StoreOptions store_options;
  int shutdown_seconds = 10;
  std::string log_level = "info";

  CLI::App app{"logbookd: the Logbook event store server (gRPC, PostgreSQL)"};
  app.option_defaults()->always_capture_default();
  app.add_option("--listen", server_options.listen, "Address to serve gRPC on, host:port")
      ->envname("LOGBOOK_LISTEN");
  app.add_option("--tls-cert", server_options.tls.cert_file,
                 "Serve TLS only, with this PEM certificate chain (re-read when it changes, "
                 "within 2 s, and on SIGHUP; open calls stay)")
      ->envname("LOGBOOK_TLS_CERT");
  app.add_option("--tls-key", server_options.tls.key_file, "PEM private key of --tls-cert")
      ->envname("LOGBOOK_TLS_KEY");
  app.add_option("--tls-client-ca", server_options.tls.client_ca_file,
                 "Require client certificates signed by a CA in this PEM file (mTLS)")
      ->envname("LOGBOOK_TLS_CLIENT_CA");
  app.add_flag("--insecure-listen", server_options.insecure_listen,
               "Serve plaintext on a non-loopback address (without TLS, logbookd otherwise "
               "refuses any address but 127.0.0.0/8, ::1 and localhost)");
  app.add_option("--database", store_options.dsn,
                 "PostgreSQL connection string or URL (libpq syntax)")
      ->envname("LOGBOOK_DATABASE_URL")
      ->required();
  app.add_option("--admin-database", store_options.admin_dsn,
                 "Connection for admin calls (RedactEvent) only, as a role granted "
                 "logbook_redactor (default: --database)")
      ->envname("LOGBOOK_ADMIN_DATABASE_URL");
  std::vector<std::string> replica_dsns;
  app.add_option("--replica-database", replica_dsns,
                 "A PostgreSQL hot standby of --database (repeatable) that serves ReadStream, "
                 "ReadAll, GetStream, Verify and subscriptions' catch-up whenever it has "
                 "replayed as far as this instance knows the log to be; else the primary "
                 "serves them. Appends, the live tail and consumer groups always use the "
                 "primary");
  app.add_option("--pool-size", store_options.pool_size, "Database connections at most")
      ->check(CLI::Range(1, 1000));
  app.add_option("--append-writers", store_options.append_writers,
                 "Database connections writing appends at once (each in its own transaction)")
      ->check(CLI::Range(1, 64));
  app.add_option("--workers", server_options.worker_threads,
                 "Threads running database calls (default: the pool size)")
      ->check(CLI::Range(1, 1000));
  logbook::store::SubscriptionOptions& subscriptions = server_options.subscriptions;
  app.add_option("--subscription-buffer", subscriptions.max_buffered_events,
                 "Events buffered per subscriber before it falls back to reading the table")
      ->check(CLI::Range(size_t{1}, size_t{1000000}));
  app.add_option("--subscription-buffer-bytes", subscriptions.max_buffered_bytes,
                 "Bytes one subscriber may hold (queued events and catch-up reads); room for "
                 "two catch-up reads is always used (3 MiB with 1 MiB events); units such as "
                 "MiB accepted")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(size_t{1} << 20, size_t{1} << 30));
  app.add_option("--max-subscription-memory", subscriptions.max_memory,
                 "Bytes all subscriptions may hold together (0: no cap); past it catch-up "
                 "reads wait and new subscriptions fail with RESOURCE_EXHAUSTED; units such as "
                 "GiB accepted")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--max-subscriptions-per-connection",
                 server_options.max_subscriptions_per_connection,
                 "Open subscriptions one client connection may hold (0: no cap); past it "
                 "Subscribe fails with RESOURCE_EXHAUSTED");
  int idle_seconds = 300, keepalive_seconds = 60, keepalive_timeout_seconds = 20;
  app.add_option("--idle-connection-timeout", idle_seconds,
                 "Seconds a client connection may go without a call before it is closed "
                 "(0: never)")
      ->check(CLI::Range(0, 1000000));
  app.add_option("--keepalive-time", keepalive_seconds,
                 "Seconds without traffic after which logbookd pings a client, to find dead "
                 "peers (0: never); clients may ping as often as every 10 s")
      ->check(CLI::Range(0, 1000000));
  app.add_option("--keepalive-timeout", keepalive_timeout_seconds,
                 "Seconds a ping may go unanswered before the connection and its calls are "
                 "closed")
      ->check(CLI::Range(1, 1000000));
  logbook::store::Limits& limits = store_options.limits;
  app.add_option("--max-event-bytes", limits.max_event_bytes,
                 "Largest data + metadata of one event")
      ->check(CLI::Range(size_t{1}, size_t{64} << 20));
  app.add_option("--max-batch-events", limits.max_batch_events, "Most events in one append")
      ->check(CLI::Range(size_t{1}, size_t{100000}));
  app.add_option("--max-batch-bytes", limits.max_batch_bytes,
                 "Largest data + metadata of one append")
      ->check(CLI::Range(size_t{1}, size_t{256} << 20));
  app.add_option("--snapshots-kept", store_options.snapshots_kept,
                 "Newest snapshots kept per stream")
      ->check(CLI::Range(size_t{1}, size_t{1000}));
  app.add_option("--verify-streams-per-pass", store_options.verify_streams_per_pass,
                 "Streams whose receipt chains verifying $all holds in memory at once (about "
                 "170 bytes each); more streams cost one more pass over the log each")
      ->check(CLI::Range(size_t{1}, size_t{100000000}));
  std::string admin_token_file;
  auto* token_option =
      app.add_option("--admin-token", server_options.admin_token,
                     "Token of a principal 'admin' with every role, redaction included, sent as "
                     "'authorization: Bearer <token>'; unset: only --auth-tokens principals with "
                     "the admin role may redact. Prefer the environment or --admin-token-file: "
                     "the command line is visible to other users")
          ->envname("LOGBOOK_ADMIN_TOKEN");
  app.add_option("--admin-token-file", admin_token_file,
                 "Read the admin token from this file (surrounding whitespace ignored)")
      ->check(CLI::ExistingFile)
      ->excludes(token_option);
  app.add_option("--auth-tokens", server_options.auth_tokens_file,
                 "Tokens file: one principal per line, '<sha256 of token | cert:NAME> <principal> "
                 "<roles> - <scopes> [quotas]' (docs/security.md; `logbook auth token create` makes "
                 "lines). Set: every call must authenticate; re-read on SIGHUP. Unset: callers "
                 "without a token are anonymous, served on a loopback address only")
      ->envname("LOGBOOK_AUTH_TOKENS")
      ->check(CLI::ExistingFile);
  app.add_option("--auth-jwt-key", server_options.auth_jwt_keys_file,
                 "Public keys trusted to sign JWT bearer tokens: PEM (RSA for RS256, EC P-256 "
                 "for ES256) or a JWKS file; re-read on SIGHUP. sub is the principal, roles "
                 "and scopes claims as in the tokens file (docs/security.md). Set: every call "
                 "must authenticate")
      ->envname("LOGBOOK_AUTH_JWT_KEY")
      ->check(CLI::ExistingFile);
  app.add_option("--auth-jwt-issuer", server_options.auth_jwt_issuer,
                 "The iss every JWT must carry (required with --auth-jwt-key)")
      ->envname("LOGBOOK_AUTH_JWT_ISSUER");
  app.add_option("--auth-jwt-audience", server_options.auth_jwt_audience,
                 "The aud every JWT must include (required with --auth-jwt-key)")
      ->envname("LOGBOOK_AUTH_JWT_AUDIENCE");
  app.add_option("--auth-failures-per-minute", server_options.auth_failures_per_minute,
                 "Failed authentications one source address may make within a minute; then "
                 "every call from it is refused (RESOURCE_EXHAUSTED) until the minute is over")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--metrics-listen", server_options.metrics_listen,
                 "Serve Prometheus metrics at /metrics, and the probes /healthz (alive) and "
                 "/readyz (database reachable, schema current), over plain HTTP on this "
                 "HOST:PORT (docs/operations.md); unset: none")
      ->envname("LOGBOOK_METRICS_LISTEN");
  app.add_option("--http-listen", server_options.http_listen,
                 "Serve the HTTP/JSON API (reads, appends, verification, consumer groups; "
                 "docs/http-api.md) over plain HTTP on this HOST:PORT, with the gRPC API's "
                 "authentication and limits; unset: none")
      ->envname("LOGBOOK_HTTP_LISTEN");
  app.add_option("--console-dir", server_options.console_dir,
                 "Serve the web console (at / on --http-listen) from this folder's files "
                 "instead of the copy built into logbookd: for working on the console "
                 "(docs/console.md)")
      ->check(CLI::ExistingDirectory);
  int member_timeout_seconds = 10;
  app.add_option("--consumer-member-timeout", member_timeout_seconds,
                 "Seconds a consumer-group member stays live without its instance renewing it "
                 "(every second); then its PER_STREAM streams and its leases move to other "
                 "members. Lower: faster failover; higher: fewer moves on a slow network")
      ->check(CLI::Range(3, 3600));
  app.add_option("--quota-subscriptions", server_options.quota_subscriptions,
                 "Subscriptions one principal may hold open at once, over all its connections "
                 "(0: no limit); a tokens-file line's quotas field overrides it. All anonymous "
                 "callers are one principal")
      ->check(CLI::Range(0, 1000000));
  app.add_option("--quota-consumers", server_options.quota_consumers,
                 "Consumer-group consumers (Consume calls) one principal may hold open at once "
                 "(0: no limit); a tokens-file line's quotas field overrides it")
      ->check(CLI::Range(0, 1000000));
  app.add_option("--quota-appends-in-flight", server_options.quota_appends_in_flight,
                 "Appends of one principal the server may be working on at once (0: no "
                 "limit); a tokens-file line's quotas field overrides it")
      ->check(CLI::Range(0, 1000000));
  std::string signing_key_file;
  app.add_option("--signing-key", signing_key_file,
                 "Ed25519 private key (PEM, `openssl genpkey -algorithm ed25519`) that signs "
                 "checkpoints of the log; verifying the whole log then checks them")
      ->envname("LOGBOOK_SIGNING_KEY_FILE")
      ->check(CLI::ExistingFile);
  int checkpoint_seconds = 300;
  app.add_option("--checkpoint-interval", checkpoint_seconds,
                 "Seconds between signed checkpoints (with --signing-key); 0: only on demand")
      ->check(CLI::Range(0, 86400));
  app.add_option("--shutdown-grace", shutdown_seconds,
                 "Seconds in-flight calls get to finish on SIGTERM");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  std::string log_format = "text";
  app.add_option("--log-format", log_format,
                 "text (for people), or json: one object per line with time (UTC), level, "
                 "logger and message, for log collectors")
      ->envname("LOGBOOK_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}));
  CLI11_PARSE(app, argc, argv);
  if (app.count("--workers") == 0) server_options.worker_threads = store_options.pool_size;
  server_options.member_timeout = absl::Seconds(member_timeout_seconds);
  server_options.idle_connection_timeout = absl::Seconds(idle_seconds);
  server_options.keepalive_time = absl::Seconds(keepalive_seconds);
  server_options.keepalive_timeout = absl::Seconds(keepalive_timeout_seconds);
  server_options.database_dsn = store_options.dsn;
  if (!admin_token_file.empty()) {
    std::ifstream in(admin_token_file, std::ios::binary);
    if (!in.is_open()) {
      std::cerr << "--admin-token-file: cannot read " << admin_token_file << "\n";
      return 2;
    }
    std::stringstream text;
    text << in.rdbuf();
    server_options.admin_token = std::string(absl::StripAsciiWhitespace(text.str()));
    if (server_options.admin_token.empty()) {
      std::cerr << "--admin-token-file: " << admin_token_file << " holds no token\n";
      return 2;
    }
  }

  if (!signing_key_file.empty()) {
    std::ifstream in(signing_key_file, std::ios::binary);
    std::stringstream pem;
    pem << in.rdbuf();
    auto key = logbook::store::SigningKey::FromPem(pem.str());
    if (!key.ok()) {
      std::cerr << "--signing-key: " << signing_key_file << ": " << key.status().message() << "\n";
      return 2;
    }
    store_options.signing_key = *std::move(key);
    server_options.checkpoint_interval = absl::Seconds(checkpoint_seconds);
  }

  spdlog::set_default_logger(spdlog::stderr_color_mt("logbookd"));
  spdlog::set_level(spdlog::level::from_str(log_level));
  if (log_format == "json") {
    spdlog::set_formatter(logbook::service::JsonLogFormatter());  // No colour codes in it.
  }

  // Block the shutdown signals in every thread; main waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto schema = logbook::store::CheckSchema(store_options.dsn,
                                            logbook::store::EmbeddedMigrations());
  if (!schema.ok()) {
    spdlog::critical("cannot start: {}", std::string(schema.status().message()));
    return 1;
  }
  for (const std::string& warning : schema->warnings) spdlog::warn("{}", warning);
  if (!server_options.metrics_listen.empty()) {
    server_options.store_metrics = std::make_shared<logbook::service::StoreMetrics>();
    store_options.observer = server_options.store_metrics;
  }
  auto store = logbook::store::EventStore::Open(store_options);
  if (!store.ok()) {
    spdlog::critical("cannot start: {}", std::string(store.status().message()));
    return 1;
  }
  // The replicas: the primary's options, on their own connections.
  std::vector<std::unique_ptr<logbook::store::EventStore>> replicas;
  for (const std::string& dsn : replica_dsns) {
    logbook::store::StoreOptions replica_options = store_options;
    replica_options.dsn = dsn;
    replica_options.admin_dsn.clear();
    replica_options.observer = nullptr;
    auto replica = logbook::store::EventStore::Open(replica_options);
    if (!replica.ok()) {
      spdlog::critical("cannot start: replica database: {}",
                       std::string(replica.status().message()));
      return 1;
    }
    server_options.replicas.push_back(replica->get());
    replicas.push_back(*std::move(replica));
  }
  server_options.schema_version = schema->version;
  auto server = logbook::service::Server::Start(server_options, **store);
  if (!server.ok()) {
    spdlog::critical("cannot start: {}", std::string(server.status().message()));
    return 1;
  }
  const std::string& listen = server_options.listen;
  spdlog::info(
      "logbookd listening on {}:{} (schema version {}, {} database connections for reads, {} "
      "for appends)",
      listen.substr(0, listen.rfind(':')), (*server)->port(), schema->version,
      store_options.pool_size,
      store_options.append_writers);
  if (!replicas.empty()) {
    spdlog::info("reads may be served by {} replica database(s) once they have replayed as far "
                 "as this instance knows the log to be",
                 replicas.size());
  }
  if ((*server)->metrics_port() != 0) {
    const std::string& m = server_options.metrics_listen;
    spdlog::info("metrics on http://{}:{}/metrics (probes /healthz, /readyz)",
                 m.substr(0, m.rfind(':')), (*server)->metrics_port());
  }
  if ((*server)->http_port() != 0) {
    const std::string& h = server_options.http_listen;
    spdlog::info("HTTP API on http://{}:{}/v1/, the web console at / (docs/http-api.md)",
                 h.substr(0, h.rfind(':')), (*server)->http_port());
  }
  if (store_options.signing_key != nullptr) {
    spdlog::info("signing checkpoints with key {} ({})",
                 absl::BytesToHexString(store_options.signing_key->key_id()).substr(0, 16),
                 checkpoint_seconds > 0 ? absl::StrCat("every ", checkpoint_seconds, " s")
                                        : std::string("on demand only"));
  }
  if (server_options.auth_tokens_file.empty() && server_options.auth_jwt_keys_file.empty()) {
    spdlog::info("authentication: none (no --auth-tokens or --auth-jwt-key): callers without a "
                 "token are anonymous with every role but admin{}",
                 server_options.admin_token.empty() ? "" : "; --admin-token set");
  } else {
    spdlog::info(
        "authentication: required; principals from {}{}{}",
        server_options.auth_tokens_file.empty() ? "" : server_options.auth_tokens_file,
        server_options.auth_jwt_keys_file.empty()
            ? ""
            : absl::StrCat(server_options.auth_tokens_file.empty() ? "" : ", ",
                           "JWTs signed by the keys of ", server_options.auth_jwt_keys_file,
                           " (iss ", server_options.auth_jwt_issuer, ", aud ",
                           server_options.auth_jwt_audience, ")"),
        server_options.admin_token.empty() ? "" : ", and --admin-token");
  }
  spdlog::info("quotas per principal (0: no limit; a tokens-file line may set its own): {} "
               "subscriptions, {} consumers, {} appends in flight",
               server_options.quota_subscriptions, server_options.quota_consumers,
               server_options.quota_appends_in_flight);
  spdlog::info(
      "subscriptions: {} bytes each, {} bytes in all (0: no cap), {} per connection (0: no "
      "cap); connections idle for {} s are closed; allocator: {}",
      subscriptions.max_buffered_bytes, subscriptions.max_memory,
      server_options.max_subscriptions_per_connection, idle_seconds, AllocatorSettings());

  if (!server_options.tls.cert_file.empty()) {
    spdlog::info("TLS: certificate {}, key {}; {}", server_options.tls.cert_file,
                 server_options.tls.key_file,
                 server_options.tls.client_ca_file.empty()
                     ? std::string("client certificates not requested")
                     : absl::StrCat("client certificates required, signed by a CA in ",
                                    server_options.tls.client_ca_file));
  } else if (server_options.insecure_listen) {
    spdlog::warn("plaintext on {} (--insecure-listen): anyone who can reach it may call",
                 server_options.listen);
  }

  int received = 0;
  for (;;) {
    sigwait(&signals, &received);
    if (received != SIGHUP) break;
    // The certificate files are watched (MakeServerCredentials): within a
    // few seconds they are read again anyway.
    if (!server_options.tls.cert_file.empty()) {
      spdlog::info("SIGHUP: the TLS files are read again within {} s; open calls stay",
                   logbook::service::kTlsRefreshSeconds);
    }
    if (!server_options.auth_tokens_file.empty() || !server_options.auth_jwt_keys_file.empty()) {
      absl::StatusOr<size_t> principals = (*server)->ReloadAuth();
      if (principals.ok()) {
        spdlog::info("SIGHUP: {} principals from {}{}", *principals,
                     server_options.auth_tokens_file.empty() ? "(no tokens file)"
                                                             : server_options.auth_tokens_file,
                     server_options.auth_jwt_keys_file.empty()
                         ? ""
                         : absl::StrCat("; JWT keys read again from ",
                                        server_options.auth_jwt_keys_file));
      } else {
        spdlog::error("SIGHUP: keeping the principals there were: {}",
                      std::string(principals.status().message()));
      }
    }
  }
  spdlog::info("{} received: finishing in-flight calls (up to {} s), then exiting",
               strsignal(received), shutdown_seconds);
  (*server)->Shutdown(absl::Seconds(shutdown_seconds));
  spdlog::info("logbookd stopped");
  return 0;
}
