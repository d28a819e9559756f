// Consume over gRPC: one consumer of a group, on a bidirectional stream.
// The reactor validates what the client sends, runs its join, acks and
// nacks on the worker pool (one at a time, reading the next message only
// after), and writes what the group's dispatcher hands it
// (consumer_group_hub.h), one message at a time.
#pragma once

#include <functional>

#include <grpcpp/grpcpp.h>

#include "consumer_group_hub.h"
#include "logbook/service/worker_pool.h"
#include "logbook/store/consumer_groups.h"
#include "logbook/v1/event_store.pb.h"

namespace logbook::service {

class Metrics;

// INVALID_ARGUMENT naming the field when a message other than the first is
// malformed (an ack or nack: 1 to 10,000 ids, none twice; a reason of at
// most 1,024 bytes; a retry delay of at most an hour). Pure.
absl::Status ValidateSettle(const v1::ConsumeRequest& request);

// Whether the caller may join `group`: OK, or the status that ends the call.
using AdmitToGroup = std::function<absl::Status(const store::GroupDefinition& group)>;

// A reactor serving one Consume call of a caller of `tenant`, whose groups
// it joins (store::GroupKey); its join is refused when `admit` says so,
// counting its deliveries and settles in `metrics`. `on_done` runs when the
// call is over; the reactor deletes itself. `groups`, `hub`, `workers` and
// `metrics` must outlive it.
grpc::ServerBidiReactor<v1::ConsumeRequest, v1::ConsumeResponse>* StartConsumeReactor(
    store::ConsumerGroups& groups, ConsumerGroupHub& hub, WorkerPool& workers, Metrics& metrics,
    std::string tenant, AdmitToGroup admit, std::function<void()> on_done);

}  // namespace logbook::service
