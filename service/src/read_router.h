// Sends reads to PostgreSQL hot standbys (logbookd --replica-database) when
// they have replayed enough, and to the primary otherwise
// (docs/operations.md#reads-from-replicas).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "logbook/store/event_store.h"

namespace logbook::service {

class Metrics;

// Which replica a read goes to: the first, from `start` on and round the
// list, whose replayed head is at least `needed`; nullopt when none is
// (the read then goes to the primary). Pure.
std::optional<size_t> ChooseReplica(uint64_t needed, const std::vector<uint64_t>& heads,
                                    size_t start);

// Thread-safe. A read served by a replica sees at least everything this
// instance knew to be in the log when it started (`needed`, the live
// tail's head: its own appends, and others' once their NOTIFY arrives), so
// on one instance no read sees less of the log than one before it. The
// stores must outlive it.
class ReadRouter {
 public:
  ReadRouter(store::EventStore& primary, std::vector<store::EventStore*> replicas,
             Metrics& metrics);

  // The store for a read that must see the log up to `needed`. A replica's
  // head is what it last reported, asked again (one query) when that is
  // short of `needed`; a replica that cannot answer is skipped.
  store::EventStore& For(uint64_t needed);

 private:
  store::EventStore& primary_;
  const std::vector<store::EventStore*> replicas_;
  Metrics& metrics_;
  std::unique_ptr<std::atomic<uint64_t>[]> heads_;  // Last reported, per replica.
  std::atomic<size_t> next_{0};                       // Where the next read starts looking.
};

}  // namespace logbook::service
