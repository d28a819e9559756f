#include "subscribe_reactor.h"

#include <memory>

#include "convert.h"
#include "metrics.h"

namespace logbook::service {
namespace {

// Writes each message the subscription sends (one write in flight at a
// time, which the subscription guarantees) and finishes the call when it
// ends. Every method runs on a gRPC or database thread and never blocks.
class SubscribeReactor final : public grpc::ServerWriteReactor<v1::SubscribeResponse>,
                               public store::SubscriptionConsumer {
 public:
  SubscribeReactor(Metrics& metrics, const v1::SubscribeRequest& request,
                   std::function<void()> on_done)
      : metrics_(metrics),
        on_done_(std::move(on_done)),
        batched_(request.max_events_per_message() > 1) {
    // A stream's subscription says nothing of how far behind the log it is.
    if (request.target_case() != v1::SubscribeRequest::kStreamId) metrics_.Watch(&sent_);
  }

  void Start(store::LogTail& tail, const store::SubscriptionRequest& request) {
    subscription_ = tail.Subscribe(request, *this);
    // May end (and Finish) before it returns; the reactor stays until OnDone.
    subscription_->Start();
  }

  // store::SubscriptionConsumer. Send and OnEnded never overlap, and Send
  // is not called again before MessageDone: response_ has one user.
  void Send(std::vector<store::SubscriptionItem> message) override {
    const store::SubscriptionItem& first = message.front();
    switch (first.kind) {
      case store::SubscriptionItem::Kind::kEvent:
        if (batched_) {
          // Clear() keeps the batch's RecordedEvents for reuse.
          v1::EventBatch* batch = response_.mutable_events();
          batch->Clear();
          for (const auto& item : message) ToProto(item.event(), *batch->add_events());
        } else {
          v1::RecordedEvent* event = response_.mutable_event();
          event->Clear();  // Reused: no field of the previous event may stay.
          ToProto(first.event(), *event);
        }
        metrics_.CountDelivered(message.size());
        sent_.store(message.back().event().global_position, std::memory_order_relaxed);
        break;
      case store::SubscriptionItem::Kind::kCaughtUp:
        response_.mutable_caught_up()->set_global_position(first.position);
        sent_.store(first.position, std::memory_order_relaxed);
        break;
      case store::SubscriptionItem::Kind::kCheckpoint:
        response_.mutable_checkpoint()->set_global_position(first.position);
        sent_.store(first.position, std::memory_order_relaxed);
        break;
      case store::SubscriptionItem::Kind::kFellBehind:
        response_.mutable_fell_behind()->set_global_position(first.position);
        metrics_.CountFellBehind();
        break;
    }
    StartWrite(&response_);
  }

  void OnEnded(const absl::Status& status) override { Finish(ToGrpcStatus(status)); }

  // grpc::ServerWriteReactor.
  void OnWriteDone(bool ok) override {
    // Clear() keeps every string's capacity, so a message of large events
    // would stay allocated for good: once what was written since the last
    // reset reaches kMaxRetainedBytes, the message is freed.
    retained_ += static_cast<size_t>(response_.GetCachedSize());
    if (retained_ >= kMaxRetainedBytes) {
      response_ = v1::SubscribeResponse();
      retained_ = 0;
    }
    subscription_->MessageDone(ok);
  }
  void OnCancel() override { subscription_->End(absl::CancelledError("cancelled")); }
  void OnDone() override {
    metrics_.Forget(&sent_);
    on_done_();
    delete this;
  }

 private:
  static constexpr size_t kMaxRetainedBytes = 1 << 20;

  Metrics& metrics_;
  std::function<void()> on_done_;
  const bool batched_;
  // The last position sent (an event's or a mark's), for the lag gauge.
  std::atomic<uint64_t> sent_{0};  // Events go in EventBatch messages.
  std::shared_ptr<store::Subscription> subscription_;
  v1::SubscribeResponse response_;  // Owned by the write in flight.
  size_t retained_ = 0;             // Bytes written into response_ since it was last freed.
};

}  // namespace

store::SubscriptionRequest FromProto(const v1::SubscribeRequest& request) {
  store::SubscriptionRequest out;
  switch (request.target_case()) {
    case v1::SubscribeRequest::kStreamId:
      out.filter.stream_id = request.stream_id();
      break;
    case v1::SubscribeRequest::kCategory:
      out.filter = FromProto(request.filter());
      out.filter.category = request.category();
      break;
    default:
      out.filter = FromProto(request.filter());
      break;
  }
  switch (request.start_case()) {
    case v1::SubscribeRequest::kAfterPosition:
      out.start = store::SubscriptionRequest::Start::kAfterPosition;
      out.after = request.after_position();
      break;
    case v1::SubscribeRequest::kAfterVersion:
      out.start = store::SubscriptionRequest::Start::kAfterVersion;
      out.after = request.after_version();
      break;
    case v1::SubscribeRequest::kFromNow:
      out.start = store::SubscriptionRequest::Start::kNow;
      break;
    default:
      break;
  }
  out.max_events_per_message = std::max<uint32_t>(1, request.max_events_per_message());
  return out;
}

grpc::ServerWriteReactor<v1::SubscribeResponse>* StartSubscribeReactor(
    store::LogTail& tail, Metrics& metrics, const v1::SubscribeRequest& request,
    std::string tenant, std::vector<std::string> scopes, std::function<void()> on_done) {
  auto* reactor = new SubscribeReactor(metrics, request, std::move(on_done));
  store::SubscriptionRequest store_request = FromProto(request);
  store_request.tenant = std::move(tenant);
  store_request.filter.scopes = std::move(scopes);
  reactor->Start(tail, std::move(store_request));
  return reactor;
}

absl::Status ValidateSubscribe(const store::Limits& limits, const v1::SubscribeRequest& request) {
  switch (request.target_case()) {
    case v1::SubscribeRequest::kStreamId:
      if (auto s = store::ValidateStreamId(limits, "stream_id", request.stream_id()); !s.ok()) {
        return s;
      }
      if (request.has_filter()) {
        return absl::InvalidArgumentError(
            "filter: applies to category and all targets; a stream_id target takes every event "
            "of the stream");
      }
      break;
    case v1::SubscribeRequest::kCategory:
      if (request.category().empty()) {
        return absl::InvalidArgumentError("category: must not be empty");
      }
      break;
    case v1::SubscribeRequest::kAll:
      break;
    default:
      return absl::InvalidArgumentError("target: set one of stream_id, category or all");
  }
  if (request.start_case() == v1::SubscribeRequest::kAfterVersion &&
      request.target_case() != v1::SubscribeRequest::kStreamId) {
    return absl::InvalidArgumentError("after_version: only for a stream_id target");
  }
  store::EventFilter filter = FromProto(request.filter());
  if (request.target_case() == v1::SubscribeRequest::kCategory) filter.category = request.category();
  return store::ValidateFilter(limits, filter);
}

}  // namespace logbook::service
