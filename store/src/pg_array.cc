#include "pg_array.h"

#include <pqxx/binarystring>

#include <limits>
#include <stdexcept>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace logbook::store {
namespace {

// Network byte order, as the binary formats want.
void PutInt(std::string& out, uint64_t v, int bytes) {
  for (int shift = (bytes - 1) * 8; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

void PutInt32(std::string& out, uint32_t v) { PutInt(out, v, 4); }

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
  if (type_ != Type::kInt4 && type_ != Type::kInt8) {
    throw std::logic_error("BinaryArray: not an element of this array's type");
  }
  if (type_ == Type::kInt4) {
    if (value < std::numeric_limits<int32_t>::min() ||
        value > std::numeric_limits<int32_t>::max()) {
      throw std::out_of_range(absl::StrCat("BinaryArray: ", value, " is out of range for int4"));
    }
    PutInt32(elements_, 4);
    PutInt32(elements_, static_cast<uint32_t>(static_cast<int32_t>(value)));
  } else {
    PutInt32(elements_, 8);
    PutInt(elements_, static_cast<uint64_t>(value), 8);
  }
  ++size_;
}

void BinaryArray::Add(std::optional<int64_t> value) {
  if (value) {
    Add(*value);
  } else {
    AddNull();
  }
}

void BinaryArray::AddNull() {
  PutInt32(elements_, 0xffffffff);  // Length -1.
  ++size_;
}

pqxx::binarystring BinaryArray::Param() const {
  // Dimensions (none for an empty array), a flags word array_recv only
  // checks for 0 or 1, the element type; then each dimension's length and
  // lower bound.
  std::string out;
  out.reserve(20 + elements_.size());
  PutInt32(out, size_ > 0 ? 1 : 0);
  PutInt32(out, 0);
  PutInt32(out, static_cast<uint32_t>(type_));
  if (size_ > 0) {
    PutInt32(out, static_cast<uint32_t>(size_));
    PutInt32(out, 1);
  }
  out += elements_;
  return pqxx::binarystring(out);
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

std::string ByteaField(const pqxx::field& field) {
  const char* text = field.c_str();
  const size_t size = field.size();
  if (size >= 2 && text[0] == '\\' && text[1] == 'x') {
    return absl::HexStringToBytes(absl::string_view(text + 2, size - 2));
  }
  return pqxx::binarystring(field).str();
}

}  // namespace logbook::store
