#include "connection_pool.h"

#include "absl/strings/str_cat.h"
#include "pg_errors.h"

namespace logbook::store {

ConnectionPool::Lease::~Lease() {
  if (pool_ != nullptr) pool_->Release(std::move(conn_));
}

ConnectionPool::ConnectionPool(std::string dsn, int size, absl::Duration acquire_timeout,
                               int max_waiters,
                               std::function<void(pqxx::connection&)> on_connect,
                               std::string name, StoreObserver* observer)
    : dsn_(std::move(dsn)),
      size_(size),
      acquire_timeout_(acquire_timeout),
      max_waiters_(max_waiters),
      on_connect_(std::move(on_connect)),
      name_(std::move(name)),
      observer_(observer) {
  if (observer_ != nullptr) observer_->ConnectionPoolSized(name_, size_);
}

ConnectionPool::~ConnectionPool() = default;

absl::StatusOr<ConnectionPool::Lease> ConnectionPool::Acquire() {
  if (observer_ == nullptr) return AcquireUntold();
  const absl::Time asked = absl::Now();
  absl::StatusOr<Lease> lease = AcquireUntold();
  observer_->ConnectionAsked(name_, absl::Now() - asked, lease.ok());
  return lease;
}

absl::StatusOr<ConnectionPool::Lease> ConnectionPool::AcquireUntold() {
  {
    absl::MutexLock lock(&mu_);
    auto can_proceed = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return !idle_.empty() || open_ < size_;
    };
    if (!can_proceed()) {
      if (waiters_ >= max_waiters_) {
        return absl::UnavailableError(absl::StrCat(
            "all ", size_, " database connections are busy and ", waiters_,
            " requests are already waiting"));
      }
      ++waiters_;
      const bool ready = mu_.AwaitWithTimeout(absl::Condition(&can_proceed), acquire_timeout_);
      --waiters_;
      if (!ready) {
        return absl::UnavailableError(absl::StrCat("no database connection became free within ",
                                                   absl::FormatDuration(acquire_timeout_)));
      }
    }
    if (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(conn));
    }
    ++open_;  // Reserve the slot; connect outside the lock.
  }
  auto opened = CatchPqxx("connect to the database",
                          [&]() -> absl::StatusOr<std::unique_ptr<pqxx::connection>> {
                            auto conn = std::make_unique<pqxx::connection>(dsn_);
                            if (on_connect_) on_connect_(*conn);
                            return conn;
                          });
  if (!opened.ok()) {
    absl::MutexLock lock(&mu_);
    --open_;
    return opened.status();
  }
  return Lease(this, *std::move(opened));
}

void ConnectionPool::DiscardIdle() {
  absl::MutexLock lock(&mu_);
  open_ -= static_cast<int>(idle_.size());
  idle_.clear();
}

void ConnectionPool::Release(std::unique_ptr<pqxx::connection> conn) {
  if (observer_ != nullptr) observer_->ConnectionReturned(name_);
  absl::MutexLock lock(&mu_);
  if (conn != nullptr && conn->is_open()) {
    idle_.push_back(std::move(conn));
  } else {
    --open_;
  }
}

}  // namespace logbook::store
