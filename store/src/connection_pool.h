// A small bounded pool of libpqxx connections.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "logbook/store/observer.h"

namespace logbook::store {

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
    Lease(Lease&& other) noexcept : pool_(other.pool_), conn_(std::move(other.conn_)) {
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
    Lease(ConnectionPool* pool, std::unique_ptr<pqxx::connection> conn)
        : pool_(pool), conn_(std::move(conn)) {}
    ConnectionPool* pool_;
    std::unique_ptr<pqxx::connection> conn_;
  };

  // `name` is the pool's for `observer` (which may be null and must
  // outlive the pool).
  ConnectionPool(std::string dsn, int size, absl::Duration acquire_timeout, int max_waiters,
                 std::function<void(pqxx::connection&)> on_connect, std::string name = "",
                 StoreObserver* observer = nullptr);
  ~ConnectionPool();

  // Returns a connection, waiting up to acquire_timeout for a free one.
  // UNAVAILABLE when none became free in time, when max_waiters callers are
  // already waiting, or when a new connection cannot be opened.
  absl::StatusOr<Lease> Acquire();

  // Closes every idle connection: after one connection broke, the others
  // most likely did too (e.g. the database restarted).
  void DiscardIdle();

 private:
  absl::StatusOr<Lease> AcquireUntold();  // Acquire, without telling observer_.
  void Release(std::unique_ptr<pqxx::connection> conn);

  const std::string dsn_;
  const int size_;
  const absl::Duration acquire_timeout_;
  const int max_waiters_;
  const std::function<void(pqxx::connection&)> on_connect_;
  const std::string name_;
  StoreObserver* const observer_;

  absl::Mutex mu_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;  // Leased + idle + being opened.
  int waiters_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace logbook::store
