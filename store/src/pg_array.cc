#include "pg_array.h"

#include <pqxx/binarystring>

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace logbook::store {
namespace {

// Network byte order, as the binary formats want.
void PutInt(std::string& out, uint64_t v, int bytes) {
  char buf[8];
  for (int i = 0; i < bytes; ++i) buf[i] = static_cast<char>(v >> (8 * (bytes - 1 - i)));
  out.append(buf, bytes);
}

void PutInt32(std::string& out, uint32_t v) { PutInt(out, v, 4); }

// Writes `v` at `at` as 8 bytes, most significant first.
void StoreBigEndian(char* at, uint64_t v) {
  v = __builtin_bswap64(v);
  std::memcpy(at, &v, 8);
}

// Type OIDs of the fields BinaryRowArray writes (fixed in every database).
constexpr uint32_t kByteaOid = 17;
constexpr uint32_t kInt8Oid = 20;
constexpr uint32_t kTextOid = 25;
constexpr uint32_t kUuidOid = 2950;

// The array header array_recv reads: dimensions (none for an empty array), a
// flags word it only checks for 0 or 1, the element type; then each
// dimension's length and lower bound.
std::string ArrayHeader(uint32_t element_oid, size_t elements, size_t reserve) {
  std::string out;
  out.reserve(20 + reserve);
  PutInt32(out, elements > 0 ? 1 : 0);
  PutInt32(out, 0);
  PutInt32(out, element_oid);
  if (elements > 0) {
    PutInt32(out, static_cast<uint32_t>(elements));
    PutInt32(out, 1);
  }
  return out;
}

}  // namespace

void BinaryArray::Add(absl::string_view bytes) {
  if ((type_ != Type::kText && type_ != Type::kUuid) ||
      (type_ == Type::kUuid && bytes.size() != 16)) {
    throw std::logic_error("BinaryArray: not an element of this array's type");
  }
  PutInt32(elements_, static_cast<uint32_t>(bytes.size()));
  elements_.append(bytes.data(), bytes.size());
  ++size_;
}

void BinaryArray::Add(int64_t value) {
  if (type_ != Type::kInt8) throw std::logic_error("BinaryArray: not an element of this array's type");
  PutInt32(elements_, 8);
  PutInt(elements_, static_cast<uint64_t>(value), 8);
  ++size_;
}

pqxx::binarystring BinaryArray::Param() const {
  std::string out = ArrayHeader(static_cast<uint32_t>(type_), size_, elements_.size());
  out += elements_;
  return pqxx::binarystring(out);
}

// The largest array header (one dimension), which BinaryRowArray leaves
// room for; an empty array's header has no dimension and is 8 bytes shorter.
constexpr size_t kArrayHeaderBytes = 20;

BinaryRowArray::BinaryRowArray(uint32_t type_oid, int fields)
    : type_oid_(type_oid), fields_(fields), out_(kArrayHeaderBytes, '\0'), used_(kArrayHeaderBytes) {}

void BinaryRowArray::Reserve(size_t rows, size_t value_bytes) {
  const size_t needed = used_ + rows * (8 + 8 * static_cast<size_t>(fields_)) + value_bytes;
  if (needed > out_.size()) out_.resize(needed);
}

char* BinaryRowArray::Append(size_t bytes) {
  if (used_ + bytes > out_.size()) out_.resize(std::max(2 * out_.size(), used_ + bytes));
  char* at = &out_[used_];
  used_ += bytes;
  return at;
}

void BinaryRowArray::StartRow() {
  FinishRow();
  row_start_ = used_;
  StoreBigEndian(Append(8), static_cast<uint32_t>(fields_));  // Length (FinishRow), fields.
  row_fields_ = 0;
  ++rows_;
}

void BinaryRowArray::FinishRow() {
  if (rows_ == 0) return;
  if (row_fields_ != fields_) {
    throw std::logic_error(absl::StrCat("BinaryRowArray: a row has ", row_fields_,
                                        " fields, not ", fields_));
  }
  StoreBigEndian(&out_[row_start_], uint64_t{used_ - row_start_ - 4} << 32 |
                                         static_cast<uint32_t>(fields_));
}

void BinaryRowArray::AddField(uint32_t oid, absl::string_view bytes) {
  if (rows_ == 0) throw std::logic_error("BinaryRowArray: a field before StartRow()");
  char* at = Append(8 + bytes.size());
  StoreBigEndian(at, uint64_t{oid} << 32 | bytes.size());  // Type OID, length.
  if (!bytes.empty()) std::memcpy(at + 8, bytes.data(), bytes.size());
  ++row_fields_;
}

void BinaryRowArray::AddNull(uint32_t oid) {
  if (rows_ == 0) throw std::logic_error("BinaryRowArray: a field before StartRow()");
  StoreBigEndian(Append(8), uint64_t{oid} << 32 | 0xffffffff);  // Length -1.
  ++row_fields_;
}

void BinaryRowArray::AddText(absl::string_view text) { AddField(kTextOid, text); }

void BinaryRowArray::AddTextOrNull(absl::string_view text) {
  if (text.empty()) return AddNull(kTextOid);
  AddField(kTextOid, text);
}

void BinaryRowArray::AddBytea(absl::string_view bytes) { AddField(kByteaOid, bytes); }

void BinaryRowArray::AddUuid(absl::string_view bytes) {
  if (bytes.size() != 16) throw std::logic_error("BinaryRowArray: a uuid is 16 bytes");
  AddField(kUuidOid, bytes);
}

void BinaryRowArray::AddInt8(std::optional<int64_t> value) {
  if (!value) return AddNull(kInt8Oid);
  char buf[8];
  StoreBigEndian(buf, static_cast<uint64_t>(*value));
  AddField(kInt8Oid, absl::string_view(buf, 8));
}

pqxx::binarystring BinaryRowArray::Param() {
  FinishRow();
  const std::string header = ArrayHeader(type_oid_, rows_, 0);
  const size_t skip = kArrayHeaderBytes - header.size();  // 8 for an empty array.
  out_.replace(skip, header.size(), header);
  return pqxx::binarystring(out_.data() + skip, used_ - skip);
}

BinaryArray TextArray(const std::vector<std::string>& values) {
  BinaryArray array(BinaryArray::Type::kText);
  for (const std::string& v : values) array.Add(v);
  return array;
}

BinaryArray Int8Array(const std::vector<int64_t>& values) {
  BinaryArray array(BinaryArray::Type::kInt8);
  for (int64_t v : values) array.Add(v);
  return array;
}

std::string TimestampLiteral(int64_t unix_micros) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%E6S+00", absl::FromUnixMicros(unix_micros),
                          absl::UTCTimeZone());
}

namespace {

// The bytes of PostgreSQL's hex output (digits only, an even number), by
// table: absl::HexStringToBytes was the largest cost of a catch-up read in
// logbookd.
std::string FromHex(const char* hex, size_t size) {
  static constexpr auto kValue = [] {
    std::array<uint8_t, 256> value{};
    for (int c = 0; c < 10; ++c) value['0' + c] = static_cast<uint8_t>(c);
    for (int c = 0; c < 6; ++c) value['a' + c] = value['A' + c] = static_cast<uint8_t>(10 + c);
    return value;
  }();
  std::string bytes(size / 2, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] = static_cast<char>(kValue[static_cast<uint8_t>(hex[2 * i])] << 4 |
                                 kValue[static_cast<uint8_t>(hex[2 * i + 1])]);
  }
  return bytes;
}

}  // namespace

std::string ByteaField(const pqxx::field& field) {
  const char* text = field.c_str();
  const size_t size = field.size();
  if (size >= 2 && text[0] == '\\' && text[1] == 'x') return FromHex(text + 2, size - 2);
  return pqxx::binarystring(field).str();
}

}  // namespace logbook::store
