#include "quotas.h"

#include "absl/strings/str_cat.h"

namespace logbook::service {

uint32_t QuotaLimit(const Quotas& quotas, QuotaKind kind) {
  switch (kind) {
    case QuotaKind::kSubscriptions:
      return quotas.subscriptions;
    case QuotaKind::kConsumers:
      return quotas.consumers;
    case QuotaKind::kAppendsInFlight:
      break;
  }
  return quotas.appends_in_flight;
}

absl::Status CheckQuota(QuotaKind kind, absl::string_view principal, uint64_t held,
                        uint32_t limit) {
  if (limit == 0 || held < limit) return absl::OkStatus();
  switch (kind) {
    case QuotaKind::kSubscriptions:
      return absl::ResourceExhaustedError(
          absl::StrCat("quota: ", principal, " has ", held,
                       " subscriptions open, its quota; close one first"));
    case QuotaKind::kConsumers:
      return absl::ResourceExhaustedError(absl::StrCat(
          "quota: ", principal, " has ", held, " consumers open, its quota; close one first"));
    case QuotaKind::kAppendsInFlight:
      break;
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("quota: ", principal, " has ", held,
                   " appends in flight, its quota; retry once one is answered"));
}

absl::Status QuotaBook::Take(QuotaKind kind, const Principal& p) {
  const auto k = static_cast<size_t>(kind);
  absl::MutexLock lock(&mu_);
  auto [it, fresh] = held_.try_emplace(p.name);
  if (absl::Status s = CheckQuota(kind, p.name, it->second[k], QuotaLimit(p.quotas, kind));
      !s.ok()) {
    if (fresh) held_.erase(it);
    return s;
  }
  ++it->second[k];
  return absl::OkStatus();
}

void QuotaBook::Give(QuotaKind kind, const std::string& principal) {
  const auto k = static_cast<size_t>(kind);
  absl::MutexLock lock(&mu_);
  auto it = held_.find(principal);
  if (it == held_.end() || it->second[k] == 0) return;  // A Give without a Take: ignored.
  if (--it->second[k] == 0 && it->second == std::array<uint64_t, 3>{}) held_.erase(it);
}

uint64_t QuotaBook::Held(QuotaKind kind, const std::string& principal) const {
  absl::MutexLock lock(&mu_);
  auto it = held_.find(principal);
  return it == held_.end() ? 0 : it->second[static_cast<size_t>(kind)];
}

}  // namespace logbook::service
