// SHA-256 as the receipts use it: FIPS 180-2 test vectors, the same digest
// on repeated calls and on other threads (each thread reuses one OpenSSL
// context), and the constant for empty input. Receipt hashes of both
// encodings against values computed apart from this code (Python's hashlib
// over docs/receipts.md's table).
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "receipts.h"

namespace logbook::store {
namespace {

TEST(Sha256, FipsVectors) {
  EXPECT_EQ(Hex(Sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hex(Sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(Sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Hex(Sha256(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, SameDigestAgainAndOnEveryThread) {
  const std::string abc = Sha256("abc");
  EXPECT_EQ(Sha256("abc"), abc);
  EXPECT_EQ(Sha256(""), Sha256(std::string()));
  std::vector<std::string> got(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t) {
    threads.emplace_back([&got, t] {
      for (int i = 0; i < 1000; ++i) got[t] = Sha256(i % 2 == 0 ? "abc" : "");
      got[t] = Sha256("abc");
    });
  }
  for (std::thread& t : threads) t.join();
  for (const std::string& g : got) EXPECT_EQ(g, abc);
}

ReceiptInput Order42(const std::string& previous, const std::string& id,
                     const std::string& data_digest, const std::string& metadata_digest) {
  return {previous, "order-42", 3, id, "OrderPlaced", "application/json",
          1796700634947123, 2u, "corr", "", data_digest, metadata_digest, "", std::nullopt};
}

TEST(ReceiptHash, VersionOneWithoutAWriter) {
  const std::string previous(32, '\x11'), id = UuidBytes("0f8fad5b-d9cb-469f-a165-70867728950e");
  const std::string data = Sha256("{\"n\":1}"), metadata = Sha256("");
  ReceiptInput in = Order42(previous, id, data, metadata);
  EXPECT_EQ(Hex(ReceiptHash(in)),
            "118a9fb4cdf92cbd4651433e7e51bfdf02a9c83965e2ae1c5d57a7d76ba71c5f");
  in.tenant = "default";  // Not hashed without a writer.
  EXPECT_EQ(Hex(ReceiptHash(in)),
            "118a9fb4cdf92cbd4651433e7e51bfdf02a9c83965e2ae1c5d57a7d76ba71c5f");
}

TEST(ReceiptHash, VersionTwoCoversTenantAndWriter) {
  const std::string previous(32, '\x11'), id = UuidBytes("0f8fad5b-d9cb-469f-a165-70867728950e");
  const std::string data = Sha256("{\"n\":1}"), metadata = Sha256("");
  ReceiptInput in = Order42(previous, id, data, metadata);
  in.tenant = "default";
  in.written_by = "ann";
  EXPECT_EQ(Hex(ReceiptHash(in)),
            "8a79ae291b4dcf98e327b62e5d454568bb57999a99edacb0de3e35a0fcb7846c");
  in.written_by = "bob";
  EXPECT_NE(Hex(ReceiptHash(in)),
            "8a79ae291b4dcf98e327b62e5d454568bb57999a99edacb0de3e35a0fcb7846c");
  // Lengths keep the fields apart: ("default", "ann") and ("defaulta", "nn")
  // hash differently.
  in.written_by = "nn";
  in.tenant = "defaulta";
  EXPECT_NE(Hex(ReceiptHash(in)),
            "8a79ae291b4dcf98e327b62e5d454568bb57999a99edacb0de3e35a0fcb7846c");
}

TEST(UuidBytes, ParsesTheCanonicalFormOnly) {
  EXPECT_EQ(UuidBytes("0f8fad5b-d9cb-469f-a165-70867728950e"),
            std::string("\x0f\x8f\xad\x5b\xd9\xcb\x46\x9f\xa1\x65\x70\x86\x77\x28\x95\x0e",
                        16));
  EXPECT_EQ(UuidBytes("0F8FAD5B-D9CB-469F-A165-70867728950E"),
            UuidBytes("0f8fad5b-d9cb-469f-a165-70867728950e"));
  EXPECT_EQ(UuidBytes("0f8fad5b-d9cb-469f-a165-70867728950"), "");     // 35 characters.
  EXPECT_EQ(UuidBytes("0f8fad5bd-9cb-469f-a165-70867728950e"), "");    // A dash moved.
  EXPECT_EQ(UuidBytes("0f8fad5b-d9cb-469f-a165-70867728950g"), "");    // Not hex.
  EXPECT_EQ(UuidBytes("0f8fad5b-d9cb-469f-a165-7086772895-e"), "");    // A dash for a digit.
  EXPECT_EQ(UuidBytes(""), "");
}

}  // namespace
}  // namespace logbook::store
