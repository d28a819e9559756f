// Signed checkpoints' pure parts: the log hash, the signed message, Ed25519
// keys from PEM, signatures. The expected hashes were computed with
// Python's hashlib, independently of OpenSSL's C API.
#include "logbook/store/checkpoints.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/escaping.h"
#include "keys.h"
#include "receipts.h"

namespace logbook::store {
namespace {

using testing::NewEd25519Key;

std::string Bytes(int first, int count) {
  std::string out;
  for (int i = 0; i < count; ++i) out.push_back(static_cast<char>(first + i));
  return out;
}

TEST(NextLogHash, IsTheDocumentedSha256) {
  // sha256(b'logbook-log-v1' + bytes(32) + pack('>Q', 1) + bytes(range(32)))
  EXPECT_EQ(absl::BytesToHexString(NextLogHash(ZeroHash(), 1, Bytes(0, 32))),
            "cac765473012b2a7c13becd2aed0bf1a51b2b0e8c91c2d53633e04a95f5e932d");
  // ... + pack('>Q', 7) + sha256(b'r')
  EXPECT_EQ(absl::BytesToHexString(NextLogHash(ZeroHash(), 7, Sha256("r"))),
            "f50db359527ea2269df4c7b3b69e2d197d354ed8b6b8d58e3b45978f53d50d3b");
  // Every input matters.
  EXPECT_NE(NextLogHash(ZeroHash(), 2, Bytes(0, 32)), NextLogHash(ZeroHash(), 1, Bytes(0, 32)));
  EXPECT_NE(NextLogHash(Sha256("x"), 1, Bytes(0, 32)), NextLogHash(ZeroHash(), 1, Bytes(0, 32)));
}

TEST(CheckpointMessage, IsTheDocumentedLayout) {
  const std::string m = CheckpointMessage(258, Bytes(1, 32), absl::FromUnixMicros(513));
  EXPECT_EQ(m, std::string("logbook-checkpoint-v1") + std::string("\0\0\0\0\0\0\1\2", 8) +
                   Bytes(1, 32) + std::string("\0\0\0\0\0\0\2\1", 8));
}

TEST(CheckpointEntry, IsPositionThenReceiptAndHashesLikeTheLog) {
  const std::string entry = CheckpointEntry(0x0102030405060708, Bytes(9, 32));
  EXPECT_EQ(entry, std::string("\1\2\3\4\5\6\7\10", 8) + Bytes(9, 32));
  ASSERT_EQ(entry.size(), kCheckpointEntrySize);
  const CheckpointEntryView parsed = ParseCheckpointEntry(entry);
  EXPECT_EQ(parsed.position, 0x0102030405060708u);
  EXPECT_EQ(parsed.receipt_hash, Bytes(9, 32));
  const std::string entries = CheckpointEntry(1, Bytes(0, 32)) + CheckpointEntry(7, Sha256("r"));
  EXPECT_EQ(NextLogHashOfEntries(ZeroHash(), entries),
            NextLogHash(NextLogHash(ZeroHash(), 1, Bytes(0, 32)), 7, Sha256("r")));
  EXPECT_EQ(NextLogHashOfEntries(Sha256("x"), ""), Sha256("x"));
  // A position above 2^63 (the top bit) is read as unsigned.
  EXPECT_EQ(ParseCheckpointEntry(CheckpointEntry(~0ull, Bytes(0, 32))).position, ~0ull);
}

TEST(SigningKey, SignaturesVerifyWithItsPublicKeyOnly) {
  const testing::PemKeyPair pem = NewEd25519Key(), other = NewEd25519Key();
  auto key = SigningKey::FromPem(pem.private_pem);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ((*key)->public_key().size(), 32u);
  EXPECT_EQ((*key)->key_id(), Sha256((*key)->public_key()));
  EXPECT_EQ(*PublicKeyFromPem(pem.public_pem), (*key)->public_key());
  EXPECT_EQ(*PublicKeyFromPem(pem.private_pem), (*key)->public_key());

  const std::string message = CheckpointMessage(9, Sha256("log"), absl::FromUnixMicros(1));
  const std::string signature = (*key)->Sign(message);
  ASSERT_EQ(signature.size(), 64u);
  EXPECT_TRUE(VerifySignature((*key)->public_key(), message, signature));
  std::string tampered = message;
  tampered[25] ^= 1;
  EXPECT_FALSE(VerifySignature((*key)->public_key(), tampered, signature));
  std::string forged = signature;
  forged[0] ^= 1;
  EXPECT_FALSE(VerifySignature((*key)->public_key(), message, forged));
  EXPECT_FALSE(VerifySignature(*PublicKeyFromPem(other.public_pem), message, signature));
  EXPECT_FALSE(VerifySignature("short", message, signature));
}

TEST(SigningKey, OnlyEd25519PrivateKeysInPemAreAccepted) {
  const std::string expected =
      "not an Ed25519 private key in PEM format (make one with `openssl genpkey -algorithm "
      "ed25519`)";
  EXPECT_EQ(SigningKey::FromPem("not a key").status(), absl::InvalidArgumentError(expected));
  EXPECT_EQ(SigningKey::FromPem(NewEd25519Key().public_pem).status(),
            absl::InvalidArgumentError(expected));
  EXPECT_EQ(PublicKeyFromPem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .status(),
            absl::InvalidArgumentError("not an Ed25519 public or private key in PEM format"));
}

TEST(CheckSnapshot, ServesOnlyWhatStillMatches) {
  auto key = SigningKey::FromPem(NewEd25519Key().private_pem);
  ASSERT_TRUE(key.ok());
  const std::string head = Sha256("receipt"), state = "state";
  SnapshotProof proof{head, Sha256(state), (*key)->key_id(),
                      (*key)->Sign(SnapshotMessage("s-1", 4, 2, head, Sha256(state)))};
  EXPECT_TRUE(CheckSnapshot("s-1", 4, 2, state, proof, head, key->get()).ok());
  EXPECT_TRUE(CheckSnapshot("s-1", 4, 2, state, proof, head, nullptr).ok());
  EXPECT_TRUE(CheckSnapshot("s-1", 4, 2, state, {}, "", nullptr).ok());  // Saved before 0014.
  const std::string what = "the snapshot of stream 's-1' at version 4 (schema 2): ";
  EXPECT_EQ(CheckSnapshot("s-1", 4, 2, "other", proof, head, nullptr),
            absl::DataLossError(what + "its state does not match its digest"));
  EXPECT_EQ(CheckSnapshot("s-1", 4, 2, state, proof, Sha256("x"), nullptr),
            absl::DataLossError(what + "the stream's receipt at that version is no longer the "
                                       "one it was computed from"));
  const std::string bad_signature =
      what + "its signature does not verify with this server's key";
  EXPECT_EQ(CheckSnapshot("s-1", 4, 3, state, proof, head, key->get()),  // Signed for schema 2.
            absl::DataLossError("the snapshot of stream 's-1' at version 4 (schema 3): its "
                                "signature does not verify with this server's key"));
  EXPECT_EQ(CheckSnapshot("s-1", 4, 2, state, {head, Sha256(state), "", ""}, head, key->get()),
            absl::DataLossError(bad_signature));
  auto other = SigningKey::FromPem(NewEd25519Key().private_pem);
  EXPECT_EQ(CheckSnapshot("s-1", 4, 2, state, proof, head, other->get()),
            absl::DataLossError(bad_signature));
}

}  // namespace
}  // namespace logbook::store
