#include "pg_array.h"

#include <pqxx/binarystring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace logbook::store {

std::string TextArrayLiteral(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

std::string IntArrayLiteral(const std::vector<int64_t>& values) {
  return "{" + absl::StrJoin(values, ",") + "}";
}

std::string NullableIntArrayLiteral(const std::vector<std::optional<int64_t>>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += values[i] ? std::to_string(*values[i]) : "NULL";
  }
  out += '}';
  return out;
}

std::string TimestampLiteral(int64_t unix_micros) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%E6S+00", absl::FromUnixMicros(unix_micros),
                          absl::UTCTimeZone());
}

std::string ByteaField(const pqxx::field& field) {
  const char* text = field.c_str();
  const size_t size = field.size();
  if (size >= 2 && text[0] == '\\' && text[1] == 'x') {
    return absl::HexStringToBytes(absl::string_view(text + 2, size - 2));
  }
  return pqxx::binarystring(field).str();
}

}  // namespace logbook::store
