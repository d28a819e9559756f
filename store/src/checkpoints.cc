#include "logbook/store/checkpoints.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "receipts.h"

namespace logbook::store {
namespace {

constexpr size_t kEd25519Bytes = 32;
constexpr size_t kSignatureBytes = 64;

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

void AppendInt8(std::string& out, uint64_t v) {  // Big-endian.
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}

// The raw key of `key` (EVP_PKEY_get_raw_public_key or _private_key).
template <typename Get>
std::string RawKey(EVP_PKEY* key, Get get) {
  std::string raw(kEd25519Bytes, '\0');
  size_t size = raw.size();
  if (get(key, reinterpret_cast<unsigned char*>(raw.data()), &size) != 1 ||
      size != kEd25519Bytes) {
    return "";
  }
  return raw;
}

Pkey ReadPem(absl::string_view pem, bool private_key) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  Pkey key(private_key ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                       : PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (key && EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519) return nullptr;
  return key;
}

}  // namespace

std::string NextLogHash(absl::string_view previous, uint64_t position,
                        absl::string_view receipt_hash) {
  std::string in = "logbook-log-v1";
  in.append(previous.data(), previous.size());
  AppendInt8(in, position);
  in.append(receipt_hash.data(), receipt_hash.size());
  return Sha256(in);
}

std::string CheckpointEntry(uint64_t position, absl::string_view receipt_hash) {
  std::string out;
  out.reserve(kCheckpointEntrySize);
  AppendInt8(out, position);
  out.append(receipt_hash.data(), receipt_hash.size());
  return out;
}

CheckpointEntryView ParseCheckpointEntry(absl::string_view entries) {
  CheckpointEntryView e;
  for (size_t i = 0; i < 8; ++i) e.position = e.position << 8 | static_cast<uint8_t>(entries[i]);
  e.receipt_hash = entries.substr(8, kCheckpointEntrySize - 8);
  return e;
}

std::string NextLogHashOfEntries(std::string log_hash, absl::string_view entries) {
  for (; entries.size() >= kCheckpointEntrySize; entries.remove_prefix(kCheckpointEntrySize)) {
    const CheckpointEntryView e = ParseCheckpointEntry(entries);
    log_hash = NextLogHash(log_hash, e.position, e.receipt_hash);
  }
  return log_hash;
}

std::string CheckpointMessage(uint64_t log_position, absl::string_view log_hash,
                              absl::Time created_at) {
  std::string out = "logbook-checkpoint-v1";
  AppendInt8(out, log_position);
  out.append(log_hash.data(), log_hash.size());
  AppendInt8(out, static_cast<uint64_t>(absl::ToUnixMicros(created_at)));
  return out;
}

std::string SnapshotMessage(absl::string_view stream_id, uint64_t stream_version,
                            uint32_t schema_version, absl::string_view head_hash,
                            absl::string_view state_digest) {
  std::string out = "logbook-snapshot-v1";
  const uint32_t length = static_cast<uint32_t>(stream_id.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(length >> shift));
  out.append(stream_id.data(), stream_id.size());
  AppendInt8(out, stream_version);
  AppendInt8(out, schema_version);
  out.append(head_hash.data(), head_hash.size());
  out.append(state_digest.data(), state_digest.size());
  return out;
}

absl::Status CheckSnapshot(absl::string_view stream_id, uint64_t stream_version,
                           uint32_t schema_version, absl::string_view state,
                           const SnapshotProof& proof, absl::string_view current_receipt,
                           const SigningKey* key) {
  const std::string what = absl::StrCat("the snapshot of stream '", stream_id, "' at version ",
                                        stream_version, " (schema ", schema_version, ")");
  const std::string digest = Sha256(state);
  if (!proof.state_digest.empty() && proof.state_digest != digest) {
    return absl::DataLossError(absl::StrCat(what, ": its state does not match its digest"));
  }
  if (!proof.head_hash.empty() && proof.head_hash != current_receipt) {
    return absl::DataLossError(absl::StrCat(
        what, ": the stream's receipt at that version is no longer the one it was computed "
              "from"));
  }
  if (key != nullptr &&
      (proof.key_id != key->key_id() || proof.head_hash.empty() ||
       !VerifySignature(key->public_key(),
                        SnapshotMessage(stream_id, stream_version, schema_version,
                                        proof.head_hash, digest),
                        proof.signature))) {
    return absl::DataLossError(
        absl::StrCat(what, ": its signature does not verify with this server's key"));
  }
  return absl::OkStatus();
}

std::string KeyId(absl::string_view public_key) { return Sha256(public_key); }

bool VerifySignature(absl::string_view public_key, absl::string_view message,
                     absl::string_view signature) {
  if (public_key.size() != kEd25519Bytes || signature.size() != kSignatureBytes) return false;
  Pkey key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                       reinterpret_cast<const unsigned char*>(public_key.data()),
                                       public_key.size()));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  return key && ctx &&
         EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(),
                          reinterpret_cast<const unsigned char*>(message.data()),
                          message.size()) == 1;
}

absl::StatusOr<std::string> PublicKeyFromPem(absl::string_view pem) {
  Pkey key = ReadPem(pem, /*private_key=*/false);
  if (!key) key = ReadPem(pem, /*private_key=*/true);
  std::string raw = key ? RawKey(key.get(), EVP_PKEY_get_raw_public_key) : "";
  if (raw.empty()) {
    return absl::InvalidArgumentError("not an Ed25519 public or private key in PEM format");
  }
  return raw;
}

absl::StatusOr<std::shared_ptr<const SigningKey>> SigningKey::FromPem(absl::string_view pem) {
  Pkey key = ReadPem(pem, /*private_key=*/true);
  std::string private_key = key ? RawKey(key.get(), EVP_PKEY_get_raw_private_key) : "";
  std::string public_key = key ? RawKey(key.get(), EVP_PKEY_get_raw_public_key) : "";
  if (private_key.empty() || public_key.empty()) {
    return absl::InvalidArgumentError(
        "not an Ed25519 private key in PEM format (make one with `openssl genpkey -algorithm "
        "ed25519`)");
  }
  return std::shared_ptr<const SigningKey>(
      new SigningKey(std::move(private_key), std::move(public_key)));
}

SigningKey::SigningKey(std::string private_key, std::string public_key)
    : private_key_(std::move(private_key)),
      public_key_(std::move(public_key)),
      key_id_(KeyId(public_key_)) {}

std::string SigningKey::Sign(absl::string_view message) const {
  Pkey key(EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(private_key_.data()),
      private_key_.size()));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  std::string signature(kSignatureBytes, '\0');
  size_t size = signature.size();
  if (!key || !ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size,
                     reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) != 1 ||
      size != kSignatureBytes) {
    return "";  // Only out of memory: a verifier then names the checkpoint.
  }
  return signature;
}

}  // namespace logbook::store
