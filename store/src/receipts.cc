#include "receipts.h"

#include <openssl/evp.h>

#include <stdexcept>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"

namespace logbook::store {
namespace {

// Most significant byte first.
void PutInt(std::string& out, uint64_t v, int bytes) {
  char buf[8];
  for (int i = 0; i < bytes; ++i) buf[i] = static_cast<char>(v >> (8 * (bytes - 1 - i)));
  out.append(buf, bytes);
}

void PutText(std::string& out, absl::string_view text) {
  PutInt(out, text.size(), 4);
  out.append(text.data(), text.size());
}

}  // namespace

const std::string& ZeroHash() {
  static const std::string* zero = new std::string(kHashBytes, '\0');
  return *zero;
}

std::string Sha256(absl::string_view bytes) {
  // Fetched once: EVP_sha256() makes OpenSSL 3 look the implementation up on
  // every call, which cost more than hashing a small event.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  // Most events have no metadata: its digest is a constant.
  static const std::string* const empty = new std::string(absl::HexStringToBytes(
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
  if (bytes.empty()) return *empty;
  // One context per thread, reset by each use: EVP_Digest allocates and
  // frees one per call.
  struct Context {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Context() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Context c;
  std::string digest(kHashBytes, '\0');
  unsigned int size = 0;
  if (c.ctx == nullptr || EVP_DigestInit_ex2(c.ctx, sha256, nullptr) != 1 ||
      EVP_DigestUpdate(c.ctx, bytes.data(), bytes.size()) != 1 ||
      EVP_DigestFinal_ex(c.ctx, reinterpret_cast<unsigned char*>(digest.data()), &size) != 1) {
    throw std::runtime_error("SHA-256 failed in OpenSSL");
  }
  return digest;
}

std::string ReceiptHash(const ReceiptInput& in) {
  std::string buf;
  buf.reserve(256 + in.stream_id.size() + in.type.size() + in.content_type.size() +
              in.correlation_id.size() + in.causation_id.size() + in.tenant.size() +
              (in.written_by ? in.written_by->size() : 0));
  buf.append(in.written_by ? "logbook-receipt-v2" : "logbook-receipt-v1");
  buf.append(in.previous_hash.data(), in.previous_hash.size());
  PutText(buf, in.stream_id);
  PutInt(buf, in.stream_version, 8);
  buf.append(in.event_id.data(), in.event_id.size());
  PutText(buf, in.type);
  PutText(buf, in.content_type);
  PutInt(buf, static_cast<uint64_t>(in.recorded_at_micros), 8);
  PutInt(buf, in.schema_version ? uint64_t{*in.schema_version} : ~uint64_t{0}, 8);
  PutText(buf, in.correlation_id);
  PutText(buf, in.causation_id);
  buf.append(in.data_digest.data(), in.data_digest.size());
  buf.append(in.metadata_digest.data(), in.metadata_digest.size());
  if (in.written_by) {
    PutText(buf, in.tenant);
    PutText(buf, *in.written_by);
  }
  return Sha256(buf);
}

std::string UuidBytes(absl::string_view text) {
  // 8-4-4-4-12 hex digits.
  if (text.size() != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' ||
      text[23] != '-') {
    return "";
  }
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string bytes(16, '\0');
  size_t i = 0;
  for (char& byte : bytes) {
    if (i == 8 || i == 13 || i == 18 || i == 23) ++i;
    const int high = nibble(text[i]), low = nibble(text[i + 1]);
    if (high < 0 || low < 0) return "";
    byte = static_cast<char>(high << 4 | low);
    i += 2;
  }
  return bytes;
}

std::string Hex(absl::string_view bytes) { return absl::BytesToHexString(bytes); }

}  // namespace logbook::store
