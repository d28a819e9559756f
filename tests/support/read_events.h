// Test support: reads a whole ReadStream / ReadAll server stream, and the
// versions or positions of what it returned.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "logbook/v1/event_store.grpc.pb.h"

namespace logbook::testing {

// Every event the read returns, and how it ended.
template <typename Request>
std::pair<std::vector<v1::RecordedEvent>, grpc::Status> ReadEvents(v1::EventStore::Stub& stub,
                                                                   const Request& request) {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<v1::ReadResponse>> reader;
  if constexpr (std::is_same_v<Request, v1::ReadStreamRequest>) {
    reader = stub.ReadStream(&ctx, request);
  } else {
    reader = stub.ReadAll(&ctx, request);
  }
  std::vector<v1::RecordedEvent> events;
  v1::ReadResponse response;
  while (reader->Read(&response)) {
    if (response.has_event()) events.push_back(response.event());
    for (const v1::RecordedEvent& e : response.events().events()) events.push_back(e);
  }
  return {events, reader->Finish()};
}

// The stream versions of `events`, in order.
inline std::vector<uint64_t> Versions(const std::vector<v1::RecordedEvent>& events) {
  std::vector<uint64_t> out;
  for (const auto& e : events) out.push_back(e.stream_version());
  return out;
}

// The global positions of `events`, in order.
inline std::vector<uint64_t> Positions(const std::vector<v1::RecordedEvent>& events) {
  std::vector<uint64_t> out;
  for (const auto& e : events) out.push_back(e.global_position());
  return out;
}

}  // namespace logbook::testing
