#include "logbook/store/uuid.h"

#include <cstdint>

#include "absl/random/random.h"
#include "absl/time/clock.h"

namespace logbook::store {

std::string NewUuid() {
  thread_local absl::BitGen random;
  unsigned char raw[16];
  const auto millis = static_cast<uint64_t>(absl::ToUnixMillis(absl::Now()));
  for (int i = 0; i < 6; ++i) raw[i] = static_cast<unsigned char>(millis >> (40 - 8 * i));
  const uint64_t low = absl::Uniform<uint64_t>(random);
  const uint64_t high = absl::Uniform<uint64_t>(random);
  for (int i = 6; i < 16; ++i) {
    raw[i] = static_cast<unsigned char>((i < 14 ? low : high) >> (8 * (i % 8)));
  }
  raw[6] = static_cast<unsigned char>(0x70 | (raw[6] & 0x0f));  // Version 7.
  raw[8] = static_cast<unsigned char>(0x80 | (raw[8] & 0x3f));  // RFC 9562 variant.
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text;
  text.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) text.push_back('-');
    text.push_back(kHex[raw[i] >> 4]);
    text.push_back(kHex[raw[i] & 0x0f]);
  }
  return text;
}

}  // namespace logbook::store
