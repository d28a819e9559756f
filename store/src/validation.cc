
#include <string>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "logbook/store/limits.h"
#include "logbook/store/uuid.h"
#include "nlohmann/json.hpp"
#include "utf8.h"

namespace logbook::store {
namespace {

// C0 controls, DEL and C1 controls (U+0080..U+009F).
bool IsControl(uint32_t cp) { return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f); }

}  // namespace

absl::Status ValidateText(absl::string_view field, absl::string_view text, size_t min_bytes,
                          size_t max_bytes) {
  if (text.size() < min_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must not be empty"));
  }
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", text.size(),
                                                   " bytes exceed the limit of ", max_bytes));
  }
  if (!IsValidUtf8(text)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": not valid UTF-8"));
  }
  for (auto it = text.begin(); it != text.end();) {
    if (IsControl(utf8::unchecked::next(it))) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": control characters are not allowed"));
    }
  }
  return absl::OkStatus();
}

namespace {
bool IsHex(char c) { return absl::ascii_isxdigit(static_cast<unsigned char>(c)); }
}  // namespace

bool IsValidUtf8(absl::string_view s) { return utf8::is_valid(s.begin(), s.end()); }

absl::StatusOr<std::string> CanonicalUuid(absl::string_view field, absl::string_view text) {
  bool ok = text.size() == 36;
  for (size_t i = 0; ok && i < text.size(); ++i) {
    ok = (i == 8 || i == 13 || i == 18 || i == 23) ? text[i] == '-' : IsHex(text[i]);
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": not a UUID (expected the form 8-4-4-4-12 hex digits, e.g. "
               "0f8fad5b-d9cb-469f-a165-70867728950e)"));
  }
  return absl::AsciiStrToLower(text);
}

bool IsJsonContentType(absl::string_view content_type) {
  absl::string_view media = content_type.substr(0, content_type.find(';'));
  return absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(media), kJsonContentType);
}

absl::Status ValidateStreamId(const Limits& limits, absl::string_view field,
                              absl::string_view stream_id) {
  return ValidateText(field, stream_id, 1, limits.max_stream_id_bytes);
}

absl::Status ValidateAppend(const Limits& limits, absl::string_view stream_id,
                            std::vector<NewEvent>& events) {
  if (auto s = ValidateStreamId(limits, "stream_id", stream_id); !s.ok()) return s;
  if (stream_id.front() == '$') {
    return absl::InvalidArgumentError(
        "stream_id: ids starting with '$' are reserved for system streams");
  }
  if (events.empty()) {
    return absl::InvalidArgumentError("events: an append needs at least one event");
  }
  if (events.size() > limits.max_batch_events) {
    return absl::ResourceExhaustedError(absl::StrCat("events: ", events.size(),
                                                     " events exceed the batch limit of ",
                                                     limits.max_batch_events));
  }
  size_t batch_bytes = 0;
  std::unordered_map<std::string, size_t> seen_ids;
  for (size_t i = 0; i < events.size(); ++i) {
    NewEvent& e = events[i];
    const std::string at = absl::StrCat("events[", i, "]");
    if (e.event_id.empty()) {
      e.event_id = NewUuid();
    } else {
      auto id = CanonicalUuid(absl::StrCat(at, ".event_id"), e.event_id);
      if (!id.ok()) return id.status();
      e.event_id = *std::move(id);
    }
    if (auto [it, inserted] = seen_ids.emplace(e.event_id, i); !inserted) {
      return absl::InvalidArgumentError(absl::StrCat(at, ".event_id: ", e.event_id,
                                                     " repeats events[", it->second, "]"));
    }
    if (auto s = ValidateText(absl::StrCat(at, ".type"), e.type, 1, limits.max_event_type_bytes);
        !s.ok()) {
      return s;
    }
    if (e.content_type.empty()) e.content_type = kJsonContentType;
    if (auto s = ValidateText(absl::StrCat(at, ".content_type"), e.content_type, 1,
                              limits.max_content_type_bytes);
        !s.ok()) {
      return s;
    }
    for (auto [name, value] : {std::pair<const char*, const std::string*>{"correlation_id",
                                                                           &e.correlation_id},
                               {"causation_id", &e.causation_id}}) {
      if (auto s = ValidateText(absl::StrCat(at, ".", name), *value, 0,
                                limits.max_correlation_id_bytes);
          !s.ok()) {
        return s;
      }
    }
    const size_t event_bytes = e.data.size() + e.metadata.size();
    if (event_bytes > limits.max_event_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(at, ": data and metadata are ",
                                                       event_bytes, " bytes; the limit is ",
                                                       limits.max_event_bytes));
    }
    batch_bytes += event_bytes;
    if (batch_bytes > limits.max_batch_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "events: the batch's data and metadata exceed the limit of ", limits.max_batch_bytes,
          " bytes (reached at events[", i, "])"));
    }
    if (IsJsonContentType(e.content_type) && !nlohmann::json::accept(e.data)) {
      return absl::InvalidArgumentError(absl::StrCat(
          at, ".data: not valid JSON, but content_type is ", e.content_type,
          " (use another content type for opaque bytes)"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateReadCount(const Limits& limits, uint64_t max_count) {
  if (max_count > limits.max_read_count) {
    return absl::InvalidArgumentError(absl::StrCat("max_count: ", max_count,
                                                   " exceeds the limit of ",
                                                   limits.max_read_count));
  }
  return absl::OkStatus();
}

absl::Status ValidateFilter(const Limits& limits, const EventFilter& filter) {
  if (!filter.stream_id.empty()) {
    if (auto s = ValidateStreamId(limits, "stream_id", filter.stream_id); !s.ok()) return s;
  }
  if (auto s = ValidateText("filter.stream_prefix", filter.stream_prefix, 0,
                            limits.max_stream_id_bytes);
      !s.ok()) {
    return s;
  }
  if (auto s = ValidateText("filter.category", filter.category, 0, limits.max_stream_id_bytes);
      !s.ok()) {
    return s;
  }
  if (filter.event_types.size() > limits.max_filter_event_types) {
    return absl::InvalidArgumentError(absl::StrCat(
        "filter.event_types: ", filter.event_types.size(), " types exceed the limit of ",
        limits.max_filter_event_types));
  }
  for (size_t i = 0; i < filter.event_types.size(); ++i) {
    if (auto s = ValidateText(absl::StrCat("filter.event_types[", i, "]"),
                              filter.event_types[i], 1, limits.max_event_type_bytes);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace logbook::store
