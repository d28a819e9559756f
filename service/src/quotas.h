// Quotas per principal (docs/security.md): how many subscriptions and
// consumers one principal may hold open and how many of its appends may be
// in flight at once, over every connection it uses.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "auth.h"

namespace logbook::service {

enum class QuotaKind { kSubscriptions = 0, kConsumers = 1, kAppendsInFlight = 2 };

// The limit of `kind` in `quotas` (0: none). Pure.
uint32_t QuotaLimit(const Quotas& quotas, QuotaKind kind);

// OK when a principal named `principal` that holds `held` of `kind` may
// take one more under `limit` (0: no limit); RESOURCE_EXHAUSTED naming the
// principal, what it holds and the quota otherwise. Pure.
absl::Status CheckQuota(QuotaKind kind, absl::string_view principal, uint64_t held,
                        uint32_t limit);

// What each principal holds now. Thread-safe; Take and Give are a mutex and
// a hash look-up, and never block on anything else.
class QuotaBook {
 public:
  // Takes one of `kind` for `p` within its quota; RESOURCE_EXHAUSTED (and
  // nothing taken) beyond it. Every OK Take needs exactly one Give.
  absl::Status Take(QuotaKind kind, const Principal& p);
  void Give(QuotaKind kind, const std::string& principal);
  // How many of `kind` `principal` holds now.
  uint64_t Held(QuotaKind kind, const std::string& principal) const;

 private:
  mutable absl::Mutex mu_;
  // Principals holding anything; one without goes.
  absl::flat_hash_map<std::string, std::array<uint64_t, 3>> held_ ABSL_GUARDED_BY(mu_);
};

}  // namespace logbook::service
