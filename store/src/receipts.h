// Receipts: the per-stream hash chain over events (docs/receipts.md).
// Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace logbook::store {

inline constexpr size_t kHashBytes = 32;       // SHA-256.
inline constexpr char kReceiptAlgorithm[] = "sha256";

// 32 zero bytes: the previous hash of a stream's first event.
const std::string& ZeroHash();

// SHA-256 of `bytes` through OpenSSL.
std::string Sha256(absl::string_view bytes);

// The hashed fields of one event; the payloads enter as digests only, so a
// redacted event keeps its receipt.
struct ReceiptInput {
  absl::string_view previous_hash;  // 32 bytes.
  absl::string_view stream_id;
  uint64_t stream_version = 0;
  absl::string_view event_id;       // 16 raw bytes.
  absl::string_view type;
  absl::string_view content_type;
  int64_t recorded_at_micros = 0;   // Since the Unix epoch.
  std::optional<uint32_t> schema_version;
  absl::string_view correlation_id;  // Empty: none.
  absl::string_view causation_id;
  absl::string_view data_digest;     // 32 bytes.
  absl::string_view metadata_digest;
  absl::string_view tenant;
  // The writer's principal (logbook-receipt-v2); nullopt for an event stored
  // before writers were recorded (logbook-receipt-v1, without the tenant).
  std::optional<absl::string_view> written_by;
};

// The receipt hash (32 bytes); logbook.receipt_hash() in SQL computes the same.
std::string ReceiptHash(const ReceiptInput& in);

// "0123...": 36-character UUID text to its 16 bytes; empty if malformed.
std::string UuidBytes(absl::string_view text);

// Lowercase hex of `bytes`.
std::string Hex(absl::string_view bytes);

}  // namespace logbook::store
