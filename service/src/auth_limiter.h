// Failed authentications, limited per source address, so that tokens
// cannot be guessed at network speed.
#pragma once

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace logbook::service {

// The source address of a gRPC peer ("ipv4:10.0.0.7:51234" -> "ipv4:10.0.0.7",
// "ipv6:[::1]:51234" -> "ipv6:[::1]"): the port changes per connection.
std::string PeerAddress(absl::string_view peer);

// After `max_failures` failed authentications from one source within
// `window` of the first of them, every call from that source is refused
// until the window has passed, whatever credential it carries. Keeps at
// most `max_sources` sources (about 100 bytes each), forgetting expired
// ones first, then all. Thread-safe; the caller passes the time.
class AuthLimiter {
 public:
  explicit AuthLimiter(int max_failures = 10, absl::Duration window = absl::Minutes(1),
                       size_t max_sources = 10000)
      : max_failures_(max_failures), window_(window), max_sources_(max_sources) {}

  // OK, or RESOURCE_EXHAUSTED saying when `source` may try again.
  absl::Status Check(absl::string_view source, absl::Time now);
  // Counts a failed attempt; true when it is the one that locks `source` out.
  bool Failed(absl::string_view source, absl::Time now);

 private:
  struct Attempts {
    absl::Time since;  // The first failure counted.
    int failures = 0;
  };

  const int max_failures_;
  const absl::Duration window_;
  const size_t max_sources_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Attempts> sources_ ABSL_GUARDED_BY(mu_);
};

}  // namespace logbook::service
