#include "connection_pool.h"

#include <pqxx/nontransaction>

#include "absl/strings/str_cat.h"
#include "pg_errors.h"

namespace logbook::store {

absl::Status SetSessionTenant(pqxx::connection& conn, absl::string_view tenant) {
  pqxx::nontransaction tx(conn);
  const pqxx::row r = tx.exec_params1(
      "SELECT set_config('logbook.tenant', $1, false), session_user,"
      " $1 <> '*' OR pg_has_role(session_user, 'logbook_all_tenants', 'MEMBER')",
      std::string(tenant));
  if (!r[2].as<bool>()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "reading every tenant's events needs a role that is a member of logbook_all_tenants, "
        "which '", r[1].as<std::string>(), "' is not (give logbookd --admin-database as one; "
        "docs/operations.md \"Roles\")"));
  }
  return absl::OkStatus();
}

ConnectionPool::Lease::~Lease() {
  if (pool_ != nullptr) pool_->Release(std::move(conn_), std::move(tenant_));
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

absl::StatusOr<ConnectionPool::Lease> ConnectionPool::Acquire(absl::string_view tenant) {
  const absl::Time asked = absl::Now();
  absl::StatusOr<Lease> lease = AcquireUntold();
  if (lease.ok() && !tenant.empty() && lease->tenant_ != tenant) {
    absl::Status set = CatchPqxx("set the session's tenant",
                                 [&]() -> absl::Status { return SetSessionTenant(**lease, tenant); });
    if (!set.ok()) {
      if (!absl::IsPermissionDenied(set)) lease->Discard();
      if (observer_ != nullptr) observer_->ConnectionAsked(name_, absl::Now() - asked, false);
      return set;
    }
    lease->tenant_ = std::string(tenant);
  }
  if (observer_ != nullptr) observer_->ConnectionAsked(name_, absl::Now() - asked, lease.ok());
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
      Idle idle = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(idle.conn), std::move(idle.tenant));
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
  return Lease(this, *std::move(opened), "");
}

void ConnectionPool::DiscardIdle() {
  absl::MutexLock lock(&mu_);
  open_ -= static_cast<int>(idle_.size());
  idle_.clear();
}

void ConnectionPool::Release(std::unique_ptr<pqxx::connection> conn, std::string tenant) {
  if (observer_ != nullptr) observer_->ConnectionReturned(name_);
  absl::MutexLock lock(&mu_);
  if (conn != nullptr && conn->is_open()) {
    idle_.push_back({std::move(conn), std::move(tenant)});
  } else {
    --open_;
  }
}

}  // namespace logbook::store
