// Watches the head of the log (the newest global position).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"

namespace logbook::store {

struct LogWatcherOptions {
  std::string dsn;
  // Read the head this often even without a notification, in case one is
  // lost (e.g. across a reconnect).
  absl::Duration poll_interval = absl::Seconds(1);
  // Wait this long before reconnecting after the connection failed.
  absl::Duration reconnect_delay = absl::Milliseconds(200);
};

// Owns one thread and one dedicated connection that LISTENs on
// logbook_events (migrations/functions/notify_head_moved.sql), polls the
// head as a fallback, and reconnects by itself after failures, logging each
// one.
// `on_head` is called from that thread with the head position whenever it
// may have moved (possibly with an unchanged value); it must not block.
// Destruction stops the thread within about 100 ms.
class LogWatcher {
 public:
  static std::unique_ptr<LogWatcher> Start(const LogWatcherOptions& options,
                                           std::function<void(uint64_t head)> on_head);
  virtual ~LogWatcher() = default;
};

}  // namespace logbook::store
