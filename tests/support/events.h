// Test support: one builder for the events tests append, through gRPC
// (v1::EventData) or straight to the store (store::NewEvent).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "logbook/store/types.h"
#include "logbook/v1/event_store.pb.h"

namespace logbook::testing {

// An event being built: a type and data; every field not set keeps the
// default of the type it becomes (no event id, so the store makes one; no
// metadata; JSON content; no schema version). Converts to either kind:
//
//   v1::EventData e = Event("Placed", "{\"total\":5}").Id(kId).Metadata("m");
//   store_->Append("order-1", ExpectedVersion::Any(), {Event("A"), Event("B")});
//
// Setters return the builder, so calls chain on a temporary.
class EventBuilder {
 public:
  EventBuilder(std::string type, std::string data);

  EventBuilder& Id(std::string event_id);
  EventBuilder& Metadata(std::string metadata);
  EventBuilder& ContentType(std::string content_type);
  EventBuilder& CorrelationId(std::string id);
  EventBuilder& CausationId(std::string id);
  EventBuilder& SchemaVersion(uint32_t version);

  operator v1::EventData() const;     // NOLINT: implicit by design.
  operator store::NewEvent() const;   // NOLINT: implicit by design.

 private:
  std::string type_;
  std::string data_;
  std::string event_id_;
  std::string metadata_;
  std::optional<std::string> content_type_;  // Unset: the target's default.
  std::string correlation_id_;
  std::string causation_id_;
  std::optional<uint32_t> schema_version_;
};

// An event of `type` with `data` (a JSON object by default).
inline EventBuilder Event(std::string type, std::string data = "{}") {
  return EventBuilder(std::move(type), std::move(data));
}

// `n` copies of Event(type), for the gRPC API.
std::vector<v1::EventData> Events(size_t n, const std::string& type = "E");

}  // namespace logbook::testing
