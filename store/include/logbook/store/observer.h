// What the store tells its owner while it works, for metrics
// (service/src/metrics.h turns it into Prometheus figures). The store calls
// it on its own threads (group-commit writers, the callers of pooled
// connections): an implementation must be thread-safe, must not block and
// must not throw. Every method does nothing unless overridden.
#pragma once

#include <cstddef>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace logbook::store {

class StoreObserver {
 public:
  virtual ~StoreObserver() = default;

  // A group commit ended (whatever its appends' outcomes): `appends`
  // appends of `events` events in all; the oldest of them waited `queued`
  // for a writer, and the database took `wrote`.
  virtual void GroupCommitted(size_t /*appends*/, size_t /*events*/,
                              absl::Duration /*queued*/, absl::Duration /*wrote*/) {}
  // Pool `pool` holds `size` connections at most (told once, as it is made).
  virtual void ConnectionPoolSized(absl::string_view /*pool*/, int /*size*/) {}
  // A caller asked pool `pool` ("store", "admin", "consumer_groups") for a
  // connection and got one (`leased`) or an error, after `waited`.
  virtual void ConnectionAsked(absl::string_view /*pool*/, absl::Duration /*waited*/,
                               bool /*leased*/) {}
  // A connection leased from `pool` came back.
  virtual void ConnectionReturned(absl::string_view /*pool*/) {}
};

}  // namespace logbook::store
