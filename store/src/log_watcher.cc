#include "logbook/store/log_watcher.h"

#include <atomic>
#include <pqxx/pqxx>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"

namespace logbook::store {
namespace {

constexpr char kChannel[] = "logbook_events";

class HeadListener final : public pqxx::notification_receiver {
 public:
  HeadListener(pqxx::connection_base& conn, std::function<void(uint64_t)>& on_head)
      : pqxx::notification_receiver(conn, kChannel), on_head_(on_head) {}
  void operator()(const std::string& payload, int) override {
    uint64_t head = 0;
    if (absl::SimpleAtoi(payload, &head)) on_head_(head);
  }

 private:
  std::function<void(uint64_t)>& on_head_;
};

class PgLogWatcher final : public LogWatcher {
 public:
  PgLogWatcher(LogWatcherOptions options, std::function<void(uint64_t)> on_head)
      : options_(std::move(options)), on_head_(std::move(on_head)), thread_([this] { Run(); }) {}

  ~PgLogWatcher() override {
    stopping_ = true;
    thread_.join();
  }

 private:
  void Run() {
    bool was_down = false;
    while (!stopping_) {
      try {
        pqxx::connection conn(options_.dsn);
        HeadListener listener(conn, on_head_);
        if (was_down) spdlog::info("log watcher: reconnected to the database");
        was_down = false;
        absl::Time next_poll = absl::InfinitePast();
        while (!stopping_) {
          if (absl::Now() >= next_poll) {
            pqxx::nontransaction tx(conn);
            on_head_(tx.exec("SELECT last_position FROM logbook.log_head")[0][0].as<uint64_t>());
            next_poll = absl::Now() + options_.poll_interval;
          }
          conn.await_notification(0, 100000);  // Wakes at least every 100 ms.
        }
      } catch (const std::exception& e) {
        if (!was_down) spdlog::warn("log watcher: {}; reconnecting", e.what());
        was_down = true;
        const absl::Time until = absl::Now() + options_.reconnect_delay;
        while (!stopping_ && absl::Now() < until) absl::SleepFor(absl::Milliseconds(20));
      }
    }
  }

  const LogWatcherOptions options_;
  std::function<void(uint64_t)> on_head_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;  // Last: starts after the other members exist.
};

}  // namespace

std::unique_ptr<LogWatcher> LogWatcher::Start(const LogWatcherOptions& options,
                                              std::function<void(uint64_t head)> on_head) {
  return std::make_unique<PgLogWatcher>(options, std::move(on_head));
}

}  // namespace logbook::store
