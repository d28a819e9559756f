// Signed checkpoints and snapshots: logbookd's Ed25519 signature over the
// whole log up to a position, and over what a snapshot was computed from
// (docs/receipts.md "Signed checkpoints"), so that even the database's
// owner cannot rewrite history before a checkpoint, or a snapshot, unnoticed.
// Pure functions and an immutable key: thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace logbook::store {

// One signed checkpoint, as logbook.checkpoints stores it.
struct Checkpoint {
  uint64_t id = 0;
  uint64_t log_position = 0;  // The log's head when it was signed.
  std::string log_hash;       // 32 bytes: NextLogHash over every event up to log_position.
  absl::Time created_at;      // Whole microseconds.
  std::string key_id;         // 32 bytes: KeyId of the signer's public key.
  std::string signature;      // 64 bytes: Ed25519 over CheckpointMessage.
};

// The log hash after the event at `position` whose receipt hash is
// `receipt_hash`, given the log hash before it (32 zero bytes before the
// first event): SHA-256('logbook-log-v1' | previous | int8 position |
// receipt hash). It commits to every receipt up to `position`, and so to
// every stream's head hash there.
std::string NextLogHash(absl::string_view previous, uint64_t position,
                        absl::string_view receipt_hash);

// What a checkpoint hashed is recorded beside it (logbook.checkpoint_receipts)
// as entries of kCheckpointEntrySize bytes: int8 position (big-endian) |
// 32-byte receipt hash. Its signature covers them through its log hash.
inline constexpr size_t kCheckpointEntrySize = 40;
std::string CheckpointEntry(uint64_t position, absl::string_view receipt_hash);
struct CheckpointEntryView {
  uint64_t position = 0;
  absl::string_view receipt_hash;
};
// The entry at the start of `entries`, which holds at least one.
CheckpointEntryView ParseCheckpointEntry(absl::string_view entries);
// `log_hash` after NextLogHash over every whole entry of `entries`, in order.
std::string NextLogHashOfEntries(std::string log_hash, absl::string_view entries);

// The bytes a checkpoint's signature signs: 'logbook-checkpoint-v1' |
// int8 log position | log hash | int8 created_at (µs since 1970, UTC).
std::string CheckpointMessage(uint64_t log_position, absl::string_view log_hash,
                              absl::Time created_at);

// The bytes a snapshot's signature signs: 'logbook-snapshot-v1' | int4
// length | stream id | int8 stream version | int8 schema version | the
// stream's receipt hash at that version | SHA-256 of the state.
std::string SnapshotMessage(absl::string_view stream_id, uint64_t stream_version,
                            uint32_t schema_version, absl::string_view head_hash,
                            absl::string_view state_digest);

// What a stored snapshot carries besides its state; empty fields: none
// recorded (saved before migration 0014, or without a signing key).
struct SnapshotProof {
  std::string head_hash;     // The stream's receipt hash at its version.
  std::string state_digest;  // SHA-256 of the state.
  std::string key_id;
  std::string signature;     // Over SnapshotMessage.
};

class SigningKey;

// Whether a stored snapshot may be served: its state matches its digest,
// its head hash is still the stream's receipt at its version
// (`current_receipt`, empty when that event is gone), and, with `key`, it
// is signed by it. DATA_LOSS naming what does not match. Pure.
absl::Status CheckSnapshot(absl::string_view stream_id, uint64_t stream_version,
                           uint32_t schema_version, absl::string_view state,
                           const SnapshotProof& proof, absl::string_view current_receipt,
                           const SigningKey* key);

// SHA-256 of a raw 32-byte Ed25519 public key: how a checkpoint names its
// signer.
std::string KeyId(absl::string_view public_key);

// Whether `signature` is the Ed25519 signature of `message` by raw public
// key `public_key`.
bool VerifySignature(absl::string_view public_key, absl::string_view message,
                     absl::string_view signature);

// The raw Ed25519 public key of a PEM public or private key ("-----BEGIN
// PUBLIC KEY-----", as `openssl pkey -pubout` writes). INVALID_ARGUMENT when
// it is not an Ed25519 key.
absl::StatusOr<std::string> PublicKeyFromPem(absl::string_view pem);

// An Ed25519 private key (made with `openssl genpkey -algorithm ed25519`).
class SigningKey {
 public:
  // INVALID_ARGUMENT when `pem` is not an Ed25519 private key.
  static absl::StatusOr<std::shared_ptr<const SigningKey>> FromPem(absl::string_view pem);

  // The 64-byte signature of `message`.
  std::string Sign(absl::string_view message) const;
  const std::string& public_key() const { return public_key_; }  // Raw, 32 bytes.
  const std::string& key_id() const { return key_id_; }

 private:
  SigningKey(std::string private_key, std::string public_key);
  std::string private_key_;  // Raw, 32 bytes.
  std::string public_key_;
  std::string key_id_;
};

}  // namespace logbook::store
