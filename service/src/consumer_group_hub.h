// Serves the consumers connected to this logbookd instance: one dispatcher
// thread per consumer group that has any here, which renews them as live
// members, brings new events of the group's target into its pending
// events, and hands each consumer what the database lets it claim
// (store/include/logbook/store/consumer_groups.h holds the rules: this only
// schedules). Everything a group knows stays in PostgreSQL; another
// instance's dispatcher for the same group claims from the same rows.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "logbook/store/consumer_groups.h"

namespace logbook::service {

// A connected consumer, as its dispatcher sees it. Implemented by the
// Consume call. Both methods are called from the dispatcher's thread and
// must not block.
class ConsumerSession {
 public:
  virtual ~ConsumerSession() = default;
  // Deliveries to send, in this order.
  virtual void Deliver(std::vector<store::GroupDelivery> deliveries) = 0;
  // PER_STREAM: the streams it owns now (sent before its first delivery and
  // whenever the group's live members change).
  virtual void Assign(store::StreamAssignment assignment) = 0;
  // The group is gone or the database refused this consumer: end the call.
  virtual void End(const absl::Status& status) = 0;
};

// Thread-safe. `groups` must outlive it; destruction stops every
// dispatcher (their sessions stay connected but get nothing more).
class ConsumerGroupHub {
 public:
  ConsumerGroupHub(store::ConsumerGroups& groups, std::string instance);
  ~ConsumerGroupHub();
  ConsumerGroupHub(const ConsumerGroupHub&) = delete;
  ConsumerGroupHub& operator=(const ConsumerGroupHub&) = delete;

  const std::string& instance() const { return instance_; }
  // A new session name for a call: "<instance>/<n>".
  std::string NewSession();

  // Reserves `consumer` of `group` for `session`: false when a call here
  // holds the name already. Nothing is delivered to it before Activate.
  // `session` must stay valid until Remove returns.
  bool Reserve(const std::string& group, const std::string& consumer,
               const std::string& session_name, ConsumerSession* session);
  // Starts delivering to it (joined: ConsumerGroups::Join), at most
  // `max_in_flight` unsettled.
  void Activate(const std::string& group, const std::string& consumer, uint32_t max_in_flight);
  // Stops serving `session`; once this returns it gets nothing more. When it
  // was active its dispatcher then hands back what it held
  // (ConsumerGroups::Leave).
  void Remove(const std::string& group, const std::string& consumer, ConsumerSession* session);
  // A delivery of `group` was settled (or its settings changed): look again.
  void Wake(const std::string& group);
  // The log's head moved: every group looks for new events.
  void WakeAll();
  // Ends every Consume call here with `status` (shutting down); what they
  // held is handed back as they go.
  void EndAll(const absl::Status& status);

 private:
  class Dispatcher;

  store::ConsumerGroups& groups_;
  const std::string instance_;
  std::atomic<uint64_t> sessions_{0};
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Dispatcher>> dispatchers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace logbook::service
