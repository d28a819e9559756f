// PostgreSQL text formats: array literals for query parameters (libpqxx 6.4
// has no array parameters; values are always passed as parameters, never
// spliced into SQL), and bytea results.
#pragma once

#include <pqxx/pqxx>

#include <optional>
#include <string>
#include <vector>

namespace logbook::store {

// '{"a","b\"c"}': every element quoted, '"' and '\' escaped. Valid for text,
// uuid and other types whose text form the server parses.
std::string TextArrayLiteral(const std::vector<std::string>& values);

// '{1,2,3}'.
std::string IntArrayLiteral(const std::vector<int64_t>& values);

// '{1,NULL,3}': unset values are NULL.
std::string NullableIntArrayLiteral(const std::vector<std::optional<int64_t>>& values);

// A timestamptz literal PostgreSQL parses exactly: "2026-11-27 01:02:03.456789+00".
std::string TimestampLiteral(int64_t unix_micros);

// The bytes of a bytea result field: hex format ("\\x0a1b...", the default
// bytea_output) is decoded here, about 4x cheaper than libpq's
// PQunescapeBytea; the escape format goes through libpq.
std::string ByteaField(const pqxx::field& field);

}  // namespace logbook::store
