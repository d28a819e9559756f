#include "events.h"

#include <utility>

namespace logbook::testing {

EventBuilder::EventBuilder(std::string type, std::string data)
    : type_(std::move(type)), data_(std::move(data)) {}

EventBuilder& EventBuilder::Id(std::string event_id) {
  event_id_ = std::move(event_id);
  return *this;
}

EventBuilder& EventBuilder::Metadata(std::string metadata) {
  metadata_ = std::move(metadata);
  return *this;
}

EventBuilder& EventBuilder::ContentType(std::string content_type) {
  content_type_ = std::move(content_type);
  return *this;
}

EventBuilder& EventBuilder::CorrelationId(std::string id) {
  correlation_id_ = std::move(id);
  return *this;
}

EventBuilder& EventBuilder::CausationId(std::string id) {
  causation_id_ = std::move(id);
  return *this;
}

EventBuilder& EventBuilder::SchemaVersion(uint32_t version) {
  schema_version_ = version;
  return *this;
}

EventBuilder::operator v1::EventData() const {
  v1::EventData e;
  e.set_type(type_);
  e.set_data(data_);
  if (!event_id_.empty()) e.set_event_id(event_id_);
  if (!metadata_.empty()) e.set_metadata(metadata_);
  if (content_type_) e.set_content_type(*content_type_);
  if (!correlation_id_.empty()) e.set_correlation_id(correlation_id_);
  if (!causation_id_.empty()) e.set_causation_id(causation_id_);
  if (schema_version_) e.set_schema_version(*schema_version_);
  return e;
}

EventBuilder::operator store::NewEvent() const {
  store::NewEvent e;
  e.event_id = event_id_;
  e.type = type_;
  e.data = data_;
  e.metadata = metadata_;
  if (content_type_) e.content_type = *content_type_;
  e.correlation_id = correlation_id_;
  e.causation_id = causation_id_;
  e.schema_version = schema_version_;
  return e;
}

std::vector<v1::EventData> Events(size_t n, const std::string& type) {
  return std::vector<v1::EventData>(n, Event(type));
}

}  // namespace logbook::testing
