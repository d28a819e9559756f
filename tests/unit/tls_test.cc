#include "tls.h"

#include <gtest/gtest.h>

namespace logbook::service {
namespace {

TEST(TlsTest, OnlyLoopbackAddressesAreLoopback) {
  EXPECT_TRUE(IsLoopbackListen("127.0.0.1:50051"));
  EXPECT_TRUE(IsLoopbackListen("127.9.8.7:0"));
  EXPECT_TRUE(IsLoopbackListen("localhost:50051"));
  EXPECT_TRUE(IsLoopbackListen("LocalHost:1"));
  EXPECT_TRUE(IsLoopbackListen("[::1]:50051"));
  EXPECT_FALSE(IsLoopbackListen("0.0.0.0:50051"));
  EXPECT_FALSE(IsLoopbackListen("[::]:50051"));
  EXPECT_FALSE(IsLoopbackListen("10.0.0.1:50051"));
  EXPECT_FALSE(IsLoopbackListen("128.0.0.1:50051"));
  EXPECT_FALSE(IsLoopbackListen("logbook.internal:50051"));
  EXPECT_FALSE(IsLoopbackListen("localhost.evil.example:50051"));
}

TEST(TlsTest, TlsFilesAreCheckedBeforeServing) {
  EXPECT_TRUE(CheckServerTls({}).ok());  // Plaintext.
  EXPECT_EQ(CheckServerTls({"", "", "ca.pem"}),
            absl::InvalidArgumentError(
                "--tls-key and --tls-client-ca need --tls-cert (the server's certificate)"));
  EXPECT_EQ(CheckServerTls({"cert.pem", "", ""}),
            absl::InvalidArgumentError("--tls-cert needs --tls-key (its private key)"));
  EXPECT_EQ(CheckServerTls({"/nonexistent/cert.pem", "/nonexistent/key.pem", ""}),
            absl::InvalidArgumentError("--tls-cert: cannot read '/nonexistent/cert.pem'"));
}

}  // namespace
}  // namespace logbook::service
