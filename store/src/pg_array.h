// PostgreSQL wire formats the store uses: arrays as binary query parameters
// (libpqxx 6.4 has no array parameters; values are always passed as
// parameters, never spliced into SQL), and bytea results.
#pragma once

#include <pqxx/pqxx>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace logbook::store {

// A one-dimensional array in PostgreSQL's binary format, the one array_recv
// reads: nothing is quoted here and the server parses no text. libpqxx sends
// a pqxx::binarystring parameter in binary format, so Param() goes straight
// to exec_prepared; the statement must cast that parameter to the matching
// array type ($1::text[] for kText, $1::uuid[] for kUuid, ...), or the
// server rejects it. An element of the wrong kind (a number for kText, a
// uuid that is not 16 bytes) throws std::logic_error. Not thread-safe;
// cheap to move.
class BinaryArray {
 public:
  // The element types, by their fixed PostgreSQL type OIDs.
  enum class Type : uint32_t { kInt8 = 20, kText = 25, kUuid = 2950 };

  explicit BinaryArray(Type type) : type_(type) {}

  // A text element, or a uuid's 16 bytes.
  void Add(absl::string_view bytes);
  // An int8 element.
  void Add(int64_t value);

  size_t size() const { return size_; }
  // The array as a binary parameter.
  pqxx::binarystring Param() const;

 private:
  Type type_;
  size_t size_ = 0;
  std::string elements_;  // Each: a 4-byte length (-1 for NULL), then the bytes.
};

// A one-dimensional array of a composite type's rows in binary format, the
// one array_recv reads with record_recv for each row: every row has the
// type's fields in its column order, each tagged with its column's type OID,
// which record_recv checks. `type_oid` is the composite type's OID in the
// database (it differs between databases). A row with the wrong number of
// fields throws std::logic_error. Not thread-safe; cheap to move.
class BinaryRowArray {
 public:
  BinaryRowArray(uint32_t type_oid, int fields);

  // Makes room for `rows` more rows whose field values take `value_bytes`
  // (saves regrowing).
  void Reserve(size_t rows, size_t value_bytes);
  // Starts the next row; its fields follow.
  void StartRow();
  void AddText(absl::string_view text);
  void AddTextOrNull(absl::string_view text);  // NULL when empty.
  void AddBytea(absl::string_view bytes);
  void AddUuid(absl::string_view bytes);  // 16 bytes, else std::logic_error.
  void AddInt8(std::optional<int64_t> value);  // NULL when unset.

  size_t size() const { return rows_; }
  // The array as a binary parameter.
  pqxx::binarystring Param();

 private:
  // The next `bytes` bytes of the output, to be written.
  char* Append(size_t bytes);
  void AddField(uint32_t oid, absl::string_view bytes);
  void AddNull(uint32_t oid);
  void FinishRow();

  uint32_t type_oid_;
  int fields_;
  size_t rows_ = 0;
  size_t row_start_ = 0;  // Offset of the last row's length word.
  int row_fields_ = 0;    // Fields of the last row so far.
  // Room for the array header, then each row: a 4-byte length, the row;
  // the first used_ bytes are written.
  std::string out_;
  size_t used_;
};

// Arrays of these values.
BinaryArray TextArray(const std::vector<std::string>& values);
BinaryArray Int8Array(const std::vector<int64_t>& values);

// A timestamptz literal PostgreSQL parses exactly: "2026-11-27 01:02:03.456789+00".
std::string TimestampLiteral(int64_t unix_micros);

// The bytes of a bytea result field: hex format ("\\x0a1b...", the default
// bytea_output) is decoded here, about 4x cheaper than libpq's
// PQunescapeBytea; the escape format goes through libpq.
std::string ByteaField(const pqxx::field& field);

}  // namespace logbook::store
