// A small bounded pool of libpqxx connections.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "logbook/store/observer.h"

namespace logbook::store {

// Sets the session setting logbook.tenant of `conn` to `tenant`
// (migrations/0021_tenants.sql), outside any transaction so that no
// rollback undoes it. PERMISSION_DENIED for "*" (every tenant) when the
// session's role is not a member of logbook_all_tenants: PostgreSQL would
// show it no rows at all. Throws what libpqxx throws.
absl::Status SetSessionTenant(pqxx::connection& conn, absl::string_view tenant);

// Hands out at most `size` connections, opening them lazily and running
// `on_connect` (e.g. to prepare statements) on each new one.
//
// Thread-safe. A connection belongs to one lease, and so to one thread, at a
// time. A lease whose connection broke must be Discard()ed; the pool then
// opens a fresh one on demand, so it recovers by itself after a database
// restart.
class ConnectionPool {
 public:
  class Lease {
   public:
    Lease(Lease&& other) noexcept
        : pool_(other.pool_), conn_(std::move(other.conn_)), tenant_(std::move(other.tenant_)) {
      other.pool_ = nullptr;
    }
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    pqxx::connection& operator*() { return *conn_; }
    pqxx::connection* operator->() { return conn_.get(); }
    // Drops the connection instead of returning it to the pool.
    void Discard() { conn_.reset(); }

   private:
    friend class ConnectionPool;
    Lease(ConnectionPool* pool, std::unique_ptr<pqxx::connection> conn, std::string tenant)
        : pool_(pool), conn_(std::move(conn)), tenant_(std::move(tenant)) {}
    ConnectionPool* pool_;
    std::unique_ptr<pqxx::connection> conn_;
    std::string tenant_;  // The session's logbook.tenant.
  };

  // `name` is the pool's for `observer` (which may be null and must
  // outlive the pool).
  ConnectionPool(std::string dsn, int size, absl::Duration acquire_timeout, int max_waiters,
                 std::function<void(pqxx::connection&)> on_connect, std::string name = "",
                 StoreObserver* observer = nullptr);
  ~ConnectionPool();

  // Returns a connection whose session setting logbook.tenant is `tenant`
  // (a tenant, or "*": every tenant; migrations/0021_tenants.sql), so that
  // PostgreSQL shows it that tenant's rows only; it is set here when the
  // connection last served another. Empty `tenant`: the call reads no
  // tenant's rows (the log's head, checkpoints), and the setting stays. Waits up to acquire_timeout for a free
  // one. UNAVAILABLE when none became free in time, when max_waiters
  // callers are already waiting, or when a new connection cannot be opened
  // or set.
  absl::StatusOr<Lease> Acquire(absl::string_view tenant);

  // Closes every idle connection: after one connection broke, the others
  // most likely did too (e.g. the database restarted).
  void DiscardIdle();

 private:
  struct Idle {
    std::unique_ptr<pqxx::connection> conn;
    std::string tenant;
  };
  absl::StatusOr<Lease> AcquireUntold();  // Acquire, without telling observer_ or setting the tenant.
  void Release(std::unique_ptr<pqxx::connection> conn, std::string tenant);

  const std::string dsn_;
  const int size_;
  const absl::Duration acquire_timeout_;
  const int max_waiters_;
  const std::function<void(pqxx::connection&)> on_connect_;
  const std::string name_;
  StoreObserver* const observer_;

  absl::Mutex mu_;
  std::vector<Idle> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;  // Leased + idle + being opened.
  int waiters_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace logbook::store
