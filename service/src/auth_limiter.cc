#include "auth_limiter.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace logbook::service {

std::string PeerAddress(absl::string_view peer) {
  const size_t colon = peer.rfind(':');
  const size_t scheme = peer.find(':');
  // "unix:/path" and other peers without a port stay as they are.
  if (colon == absl::string_view::npos || colon == scheme ||
      peer.find_first_not_of("0123456789", colon + 1) != absl::string_view::npos) {
    return std::string(peer);
  }
  return std::string(peer.substr(0, colon));
}

absl::Status AuthLimiter::Check(absl::string_view source, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = sources_.find(source);
  if (it == sources_.end() || it->second.failures < max_failures_) return absl::OkStatus();
  const absl::Time until = it->second.since + window_;
  if (now >= until) {
    sources_.erase(it);
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "too many failed authentications from ", source, ": calls from it are refused for ",
      absl::FormatDuration(absl::Ceil(until - now, absl::Seconds(1)))));
}

bool AuthLimiter::Failed(absl::string_view source, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = sources_.find(source);
  if (it != sources_.end() && now >= it->second.since + window_) {
    sources_.erase(it);
    it = sources_.end();
  }
  if (it == sources_.end()) {
    if (sources_.size() >= max_sources_) {
      absl::erase_if(sources_, [&](const auto& s) { return now >= s.second.since + window_; });
      if (sources_.size() >= max_sources_) sources_.clear();
    }
    it = sources_.emplace(std::string(source), Attempts{now, 0}).first;
  }
  return ++it->second.failures == max_failures_;
}

}  // namespace logbook::service
