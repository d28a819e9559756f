#include "logbook/service/event_store_service.h"

#include <algorithm>
#include <deque>

#include "convert.h"
#include "subscriptions.h"

namespace logbook::service {
namespace {

const grpc::Status kShuttingDown(grpc::StatusCode::UNAVAILABLE,
                                 "server shutting down; retry on another instance");
const grpc::Status kOverloaded(grpc::StatusCode::UNAVAILABLE,
                               "server overloaded: too many calls waiting for the database; "
                               "retry with backoff");

// Streams the result of a paged read: fetches a page on a worker, writes it
// one message at a time (one write in flight), fetches the next page from
// OnWriteDone, and finishes when `total` events were sent or a page came back
// short. Deletes itself in OnDone. At most one of {fetch, write} is in
// flight, so the reactor is never touched by two threads at once.
class PagedReadReactor final : public grpc::ServerWriteReactor<v1::ReadResponse> {
 public:
  using FetchPage = EventStoreService::FetchPage;

  PagedReadReactor(WorkerPool& workers, uint64_t total, FetchPage fetch,
                   std::function<void()> on_done)
      : workers_(workers), remaining_(total), fetch_(std::move(fetch)),
        on_done_(std::move(on_done)) {
    StartFetch();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    WriteNextOrFetch();
  }

  void OnDone() override {
    on_done_();
    delete this;
  }

 private:
  static constexpr uint64_t kPageSize = 500;

  void StartFetch() {
    const uint64_t want = std::min(remaining_, kPageSize);
    if (!workers_.TrySubmit([this, want] {
          absl::StatusOr<std::vector<store::RecordedEvent>> page = fetch_(want);
          if (!page.ok()) {
            Finish(ToGrpcStatus(page.status()));
            return;
          }
          last_page_ = page->size() < want;
          remaining_ -= page->size();
          page_.assign(std::make_move_iterator(page->begin()), std::make_move_iterator(page->end()));
          WriteNextOrFetch();
        })) {
      Finish(kOverloaded);
    }
  }

  void WriteNextOrFetch() {
    if (!page_.empty()) {
      response_.Clear();
      ToProto(page_.front(), *response_.mutable_event());
      page_.pop_front();
      StartWrite(&response_);
    } else if (remaining_ == 0 || last_page_) {
      Finish(grpc::Status::OK);
    } else {
      StartFetch();
    }
  }

  WorkerPool& workers_;
  uint64_t remaining_;
  FetchPage fetch_;
  std::function<void()> on_done_;
  std::deque<store::RecordedEvent> page_;
  bool last_page_ = false;
  v1::ReadResponse response_;
};

// Fails a streaming call before it started.
template <typename Response = v1::ReadResponse>
class FailedWriteReactor final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit FailedWriteReactor(const grpc::Status& status) { this->Finish(status); }
  explicit FailedWriteReactor(const absl::Status& status) { this->Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

uint64_t ReadTotal(const store::Limits& limits, uint64_t max_count) {
  return max_count == 0 ? limits.default_read_count : max_count;
}

}  // namespace

bool EventStoreService::BeginCall() {
  ++in_flight_;
  if (!draining_) return true;
  --in_flight_;
  return false;
}

grpc::ServerUnaryReactor* EventStoreService::Append(grpc::CallbackServerContext* context,
                                                    const v1::AppendRequest* request,
                                                    v1::AppendResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!BeginCall()) {
    reactor->Finish(kShuttingDown);
    return reactor;
  }
  if (!workers_.TrySubmit([this, context, request, response, reactor] {
        absl::StatusOr<store::AppendResult> result =
            store_.Append(request->stream_id(), FromProto(request->expected_version()),
                          FromProto(request->events()));
        if (result.ok()) {
          // Wake this instance's subscriptions now; other instances hear of
          // it through NOTIFY.
          hub_.OnHead(result->last_position);
          ToProto(*result, *response);
        } else {
          AddStatusTrailers(result.status(), *context);
        }
        reactor->Finish(ToGrpcStatus(result.status()));
        EndCall();
      })) {
    reactor->Finish(kOverloaded);
    EndCall();
  }
  return reactor;
}

grpc::ServerUnaryReactor* EventStoreService::GetStream(grpc::CallbackServerContext* context,
                                                       const v1::GetStreamRequest* request,
                                                       v1::StreamInfo* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!BeginCall()) {
    reactor->Finish(kShuttingDown);
    return reactor;
  }
  if (!workers_.TrySubmit([this, request, response, reactor] {
        absl::StatusOr<store::StreamInfo> info = store_.GetStream(request->stream_id());
        if (info.ok()) ToProto(*info, *response);
        reactor->Finish(ToGrpcStatus(info.status()));
        EndCall();
      })) {
    reactor->Finish(kOverloaded);
    EndCall();
  }
  return reactor;
}

grpc::ServerWriteReactor<v1::ReadResponse>* EventStoreService::StartPagedRead(
    const google::protobuf::Message& request, uint64_t max_count, FetchPage fetch) {
  if (!BeginCall()) return new FailedWriteReactor<>(kShuttingDown);
  absl::Status valid = RejectUnknownEnumValues(request);
  if (valid.ok()) valid = store::ValidateReadCount(store_.limits(), max_count);
  if (!valid.ok()) {
    EndCall();
    return new FailedWriteReactor<>(valid);
  }
  return new PagedReadReactor(workers_, ReadTotal(store_.limits(), max_count), std::move(fetch),
                              [this] { EndCall(); });
}

grpc::ServerWriteReactor<v1::ReadResponse>* EventStoreService::ReadStream(
    grpc::CallbackServerContext*, const v1::ReadStreamRequest* request) {
  store::ReadStreamQuery query;
  query.stream_id = request->stream_id();
  if (request->has_from_version()) query.from_version = request->from_version();
  query.direction = FromProto(request->direction());
  return StartPagedRead(
      *request, request->max_count(),
      [this, query, done = false](uint64_t max) mutable
      -> absl::StatusOr<std::vector<store::RecordedEvent>> {
        if (done) return std::vector<store::RecordedEvent>{};
        query.max_count = max;
        auto page = store_.ReadStream(query);
        if (page.ok() && !page->empty()) {
          const uint64_t last = page->back().stream_version;
          const bool forward = query.direction == store::Direction::kForward;
          done = !forward && last == 0;
          query.from_version = forward ? last + 1 : (done ? 0 : last - 1);
        }
        return page;
      });
}

grpc::ServerWriteReactor<v1::ReadResponse>* EventStoreService::ReadAll(
    grpc::CallbackServerContext*, const v1::ReadAllRequest* request) {
  store::ReadAllQuery query;
  if (request->has_from_position()) query.from_position = request->from_position();
  query.direction = FromProto(request->direction());
  query.filter = FromProto(request->filter());
  return StartPagedRead(
      *request, request->max_count(),
      [this, query, done = false](uint64_t max) mutable
      -> absl::StatusOr<std::vector<store::RecordedEvent>> {
        if (done) return std::vector<store::RecordedEvent>{};
        query.max_count = max;
        auto page = store_.ReadAll(query);
        if (page.ok() && !page->empty()) {
          const uint64_t last = page->back().global_position;
          const bool forward = query.direction == store::Direction::kForward;
          done = !forward && last == 1;
          query.from_position = forward ? last + 1 : (done ? 1 : last - 1);
        }
        return page;
      });
}

grpc::ServerWriteReactor<v1::SubscribeResponse>* EventStoreService::Subscribe(
    grpc::CallbackServerContext*, const v1::SubscribeRequest* request) {
  using Failed = FailedWriteReactor<v1::SubscribeResponse>;
  if (!BeginCall()) return new Failed(kShuttingDown);
  if (absl::Status valid = ValidateSubscribe(store_.limits(), *request); !valid.ok()) {
    EndCall();
    return new Failed(valid);
  }
  return hub_.Subscribe(*request, [this] { EndCall(); });
}

}  // namespace logbook::service
