// Plain value types of the event store. No gRPC or libpqxx types here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace logbook::store {

// What the appender believes the stream's version is.
struct ExpectedVersion {
  enum class Kind { kAny, kNoStream, kStreamExists, kExact };
  Kind kind = Kind::kAny;
  uint64_t version = 0;  // Only for kExact: the version of the last event.

  static ExpectedVersion Any() { return {Kind::kAny, 0}; }
  static ExpectedVersion NoStream() { return {Kind::kNoStream, 0}; }
  static ExpectedVersion StreamExists() { return {Kind::kStreamExists, 0}; }
  static ExpectedVersion Exact(uint64_t v) { return {Kind::kExact, v}; }
};

inline constexpr char kJsonContentType[] = "application/json";

// An event as the appender provides it.
struct NewEvent {
  std::string event_id;  // Canonical UUID; empty: the store generates one.
  std::string type;
  std::string data;      // Bytes.
  std::string metadata;  // Bytes.
  std::string content_type = kJsonContentType;
  std::string correlation_id;
  std::string causation_id;
};

struct AppendResult {
  uint64_t first_version = 0;
  uint64_t last_version = 0;
  uint64_t first_position = 0;
  uint64_t last_position = 0;
  absl::Time committed_at;
  std::vector<std::string> event_ids;  // As stored, in request order.
  bool duplicate = false;  // True when this was an idempotent retry.
};

// An event as stored, byte for byte.
struct RecordedEvent {
  std::string event_id;
  std::string type;
  std::string data;
  std::string metadata;
  std::string content_type;
  std::string correlation_id;
  std::string causation_id;
  std::string stream_id;
  uint64_t stream_version = 0;
  uint64_t global_position = 0;
  absl::Time recorded_at;
};

enum class Direction { kForward, kBackward };

struct ReadStreamQuery {
  std::string stream_id;
  // Inclusive. Unset: the first event forward, the last event backward.
  std::optional<uint64_t> from_version;
  Direction direction = Direction::kForward;
  uint64_t max_count = 0;  // 0: Limits::default_read_count.
};

// Empty fields select everything; set fields combine with AND.
struct EventFilter {
  std::string stream_id;  // Exactly this stream.
  std::string stream_prefix;
  std::string category;  // Stream id part before the first '-'.
  std::vector<std::string> event_types;
};

struct ReadAllQuery {
  // Inclusive. Unset: the first event forward, the last event backward.
  std::optional<uint64_t> from_position;
  Direction direction = Direction::kForward;
  uint64_t max_count = 0;  // 0: Limits::default_read_count.
  EventFilter filter;
  // Inclusive bound on the far end (forward: highest, backward: lowest).
  std::optional<uint64_t> until_position;
};

struct StreamInfo {
  std::string stream_id;
  uint64_t version = 0;
  uint64_t last_position = 0;
  absl::Time created_at;
};

}  // namespace logbook::store
