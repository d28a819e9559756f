// Subscribe over gRPC: a thin reactor over a store::Subscription, which
// does the catch-up and live delivery (logbook/store/subscription.h).
#pragma once

#include <functional>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "logbook/store/limits.h"
#include "logbook/store/subscription.h"
#include "logbook/v1/event_store.pb.h"

namespace logbook::service {

class Metrics;

// INVALID_ARGUMENT naming the field when a Subscribe request is malformed.
absl::Status ValidateSubscribe(const store::Limits& limits, const v1::SubscribeRequest& request);

// The store's request for a valid Subscribe request.
store::SubscriptionRequest FromProto(const v1::SubscribeRequest& request);

// Starts a reactor serving `request` (valid: ValidateSubscribe) from
// `tail`, bound to streams within one of `scopes` when it is not empty
// (store::EventFilter::scopes), counting what it sends in `metrics` (which
// must outlive it). `on_done` runs when the call is over. The reactor
// deletes itself.
grpc::ServerWriteReactor<v1::SubscribeResponse>* StartSubscribeReactor(
    store::LogTail& tail, Metrics& metrics, const v1::SubscribeRequest& request,
    std::string tenant, std::vector<std::string> scopes, std::function<void()> on_done);

}  // namespace logbook::service
