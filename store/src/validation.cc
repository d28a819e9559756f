// Input validation. Pure functions, thread-safe; the JSON parser is one
// per thread. Field names for messages are built only on the error path:
// an append of many small events is checked per event.
#include <simdjson.h>

#include <algorithm>
#include <string>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "logbook/store/limits.h"
#include "logbook/store/status_macros.h"
#include "logbook/store/uuid.h"
#include "nlohmann/json.hpp"
#include "utf8.h"

namespace logbook::store {
namespace {

// C0 controls, DEL and C1 controls (U+0080..U+009F).
bool IsControl(uint32_t cp) { return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f); }

// What is wrong with `text` as a text field ("" when nothing is).
std::string TextProblem(absl::string_view text, size_t min_bytes, size_t max_bytes) {
  if (text.size() < min_bytes) return "must not be empty";
  if (text.size() > max_bytes) {
    return absl::StrCat(text.size(), " bytes exceed the limit of ", max_bytes);
  }
  // Printable ASCII, the usual case, needs no decoding.
  if (std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c < 0x7f; })) {
    return "";
  }
  if (!IsValidUtf8(text)) return "not valid UTF-8";
  for (auto it = text.begin(); it != text.end();) {
    if (IsControl(utf8::unchecked::next(it))) return "control characters are not allowed";
  }
  return "";
}

// Documents up to this size go to simdjson first; its per-thread parser
// keeps about ten times the largest document's size allocated.
constexpr size_t kSimdjsonMaxBytes = 16 << 10;

// RFC 8259 JSON, as nlohmann::json::accept decides (UTF-8 checked, a BOM
// skipped, no depth limit, integers of any length, no doubles beyond
// DBL_MAX). simdjson accepts a subset of that, about ten times faster;
// whatever it refuses (deeper than 1024, integers beyond 64 bits, a BOM,
// invalid JSON) nlohmann decides. A raw NUL byte is never JSON, but
// nlohmann takes it for the end of the input.
bool IsJson(absl::string_view data) {
  if (data.size() <= kSimdjsonMaxBytes) {
    thread_local simdjson::dom::parser parser;
    if (parser.parse(data.data(), data.size()).error() == simdjson::SUCCESS) return true;
  }
  return data.find('\0') == absl::string_view::npos &&
         nlohmann::json::accept(data.begin(), data.end());
}

// Lowercases a canonical-form UUID in place; false if `text` is not one.
bool CanonicalizeUuid(std::string& text) {
  if (text.size() != 36) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (i == 8 || i == 13 || i == 18 || i == 23 ? c != '-' : !absl::ascii_isxdigit(c)) {
      return false;
    }
    text[i] = absl::ascii_tolower(c);
  }
  return true;
}

constexpr char kUuidForm[] =
    ": not a UUID (expected the form 8-4-4-4-12 hex digits, e.g. "
    "0f8fad5b-d9cb-469f-a165-70867728950e)";

}  // namespace

absl::Status ValidateText(absl::string_view field, absl::string_view text, size_t min_bytes,
                          size_t max_bytes) {
  const std::string problem = TextProblem(text, min_bytes, max_bytes);
  if (problem.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

bool IsValidUtf8(absl::string_view s) { return utf8::is_valid(s.begin(), s.end()); }

absl::StatusOr<std::string> CanonicalUuid(absl::string_view field, absl::string_view text) {
  std::string id(text);
  if (!CanonicalizeUuid(id)) return absl::InvalidArgumentError(absl::StrCat(field, kUuidForm));
  return id;
}

bool IsJsonContentType(absl::string_view content_type) {
  absl::string_view media = content_type.substr(0, content_type.find(';'));
  return absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(media), kJsonContentType);
}

absl::Status ValidateStreamId(const Limits& limits, absl::string_view field,
                              absl::string_view stream_id) {
  return ValidateText(field, stream_id, 1, limits.max_stream_id_bytes);
}

bool ScopeCovers(absl::string_view scope, absl::string_view stream_id) {
  if (!scope.empty() && scope.back() == '*') {
    return stream_id.substr(0, scope.size() - 1) == scope.substr(0, scope.size() - 1);
  }
  return stream_id.substr(0, stream_id.find('-')) == scope;
}

absl::Status ValidateWriter(const Limits& limits, const Writer& writer) {
  if (auto s = ValidateText("writer.principal", writer.principal, 1, limits.max_principal_bytes);
      !s.ok()) {
    return s;
  }
  return ValidateTenant("writer.tenant", writer.tenant);
}

absl::Status ValidateTenant(absl::string_view field, absl::string_view tenant) {
  if (tenant.empty() || tenant.size() > kMaxTenantBytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": a tenant is 1 to ", kMaxTenantBytes,
                                                   " bytes, not ", tenant.size()));
  }
  auto allowed = [](char c, bool first) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
           (!first && (c == '.' || c == '_' || c == '-'));
  };
  for (size_t i = 0; i < tenant.size(); ++i) {
    if (!allowed(tenant[i], i == 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": tenant '", absl::CHexEscape(tenant), "' has '", absl::CHexEscape(tenant.substr(i, 1)),
          "' at byte ", i, "; a tenant is [A-Za-z0-9._-], starting with a letter or digit"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateTraceparent(absl::string_view field, absl::string_view value) {
  auto hex = [](absl::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
  };
  auto zeros = [](absl::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c == '0'; });
  };
  const bool shaped = value.size() == 55 && value.substr(0, 3) == "00-" && value[35] == '-' &&
                      value[52] == '-' && hex(value.substr(3, 32)) &&
                      hex(value.substr(36, 16)) && hex(value.substr(53, 2));
  if (!shaped) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": '", absl::CHexEscape(value.substr(0, 64)),
        value.size() > 64 ? "...'" : "'",
        " is not a W3C traceparent (00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>, "
        "lowercase)"));
  }
  if (zeros(value.substr(3, 32)) || zeros(value.substr(36, 16))) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": a traceparent's trace id and parent id must not be all zeros"));
  }
  return absl::OkStatus();
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
  absl::flat_hash_map<absl::string_view, size_t> seen_ids;  // Views of events[i].event_id.
  seen_ids.reserve(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    NewEvent& e = events[i];
    auto invalid = [i](absl::string_view field, absl::string_view problem) {
      return absl::InvalidArgumentError(absl::StrCat("events[", i, "]", field, problem));
    };
    if (e.event_id.empty()) {
      e.event_id = NewUuid();
    } else if (!CanonicalizeUuid(e.event_id)) {
      return invalid(".event_id", kUuidForm);
    }
    if (auto [it, inserted] = seen_ids.emplace(e.event_id, i); !inserted) {
      return invalid(".event_id: ", absl::StrCat(e.event_id, " repeats events[", it->second, "]"));
    }
    if (e.content_type.empty()) e.content_type = kJsonContentType;
    if (!e.traceparent.empty()) {
      LOGBOOK_RETURN_IF_ERROR(
          ValidateTraceparent(absl::StrCat("events[", i, "].traceparent"), e.traceparent));
    }
    for (auto [field, text, min_bytes, max_bytes] :
         {std::tuple(".type: ", &e.type, 1, limits.max_event_type_bytes),
          std::tuple(".content_type: ", &e.content_type, 1, limits.max_content_type_bytes),
          std::tuple(".correlation_id: ", &e.correlation_id, 0, limits.max_correlation_id_bytes),
          std::tuple(".causation_id: ", &e.causation_id, 0, limits.max_correlation_id_bytes)}) {
      if (std::string problem = TextProblem(*text, min_bytes, max_bytes); !problem.empty()) {
        return invalid(field, problem);
      }
    }
    const size_t event_bytes = e.data.size() + e.metadata.size();
    if (event_bytes > limits.max_event_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("events[", i, "]: data and metadata are ",
                                                       event_bytes, " bytes; the limit is ",
                                                       limits.max_event_bytes));
    }
    batch_bytes += event_bytes;
    if (batch_bytes > limits.max_batch_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "events: the batch's data and metadata exceed the limit of ", limits.max_batch_bytes,
          " bytes (reached at events[", i, "])"));
    }
    if (IsJsonContentType(e.content_type) && !IsJson(e.data)) {
      return invalid(".data: ", absl::StrCat("not valid JSON, but content_type is ",
                                             e.content_type,
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
  if (filter.scopes.size() > limits.max_filter_event_types) {
    return absl::InvalidArgumentError(absl::StrCat("filter.scopes: ", filter.scopes.size(),
                                                   " scopes exceed the limit of ",
                                                   limits.max_filter_event_types));
  }
  for (size_t i = 0; i < filter.scopes.size(); ++i) {
    if (auto s = ValidateText(absl::StrCat("filter.scopes[", i, "]"), filter.scopes[i], 1,
                              limits.max_stream_id_bytes + 1);
        !s.ok()) {
      return s;
    }
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
