// Failed authentications limited per source address (service/src/auth_limiter.h).
#include "auth_limiter.h"

#include <gtest/gtest.h>

namespace logbook::service {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'000'000);

TEST(PeerAddress, DropsThePort) {
  EXPECT_EQ(PeerAddress("ipv4:10.0.0.7:51234"), "ipv4:10.0.0.7");
  EXPECT_EQ(PeerAddress("ipv6:[::1]:51234"), "ipv6:[::1]");
  EXPECT_EQ(PeerAddress("ipv6:%5B::1%5D:51234"), "ipv6:%5B::1%5D");
  EXPECT_EQ(PeerAddress("unix:/run/logbook.sock"), "unix:/run/logbook.sock");
  EXPECT_EQ(PeerAddress("unknown"), "unknown");
}

TEST(AuthLimiter, LocksASourceOutAfterTheLimitForTheRestOfTheWindow) {
  AuthLimiter limiter(3, absl::Minutes(1));
  const std::string a = "ipv4:10.0.0.7", b = "ipv4:10.0.0.8";
  EXPECT_FALSE(limiter.Failed(a, kStart));
  EXPECT_FALSE(limiter.Failed(a, kStart + absl::Seconds(10)));
  EXPECT_TRUE(limiter.Check(a, kStart + absl::Seconds(10)).ok());
  EXPECT_TRUE(limiter.Failed(a, kStart + absl::Seconds(20)));  // The third locks it out.
  EXPECT_EQ(limiter.Check(a, kStart + absl::Seconds(20)),
            absl::ResourceExhaustedError("too many failed authentications from ipv4:10.0.0.7: "
                                         "calls from it are refused for 40s"));
  EXPECT_EQ(limiter.Check(a, kStart + absl::Seconds(59) + absl::Milliseconds(500)).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(limiter.Check(b, kStart + absl::Seconds(20)).ok());  // Others are not.
  EXPECT_TRUE(limiter.Check(a, kStart + absl::Minutes(1)).ok());   // The window passed.
  EXPECT_FALSE(limiter.Failed(a, kStart + absl::Minutes(1)));      // Counting starts again.
}

TEST(AuthLimiter, FailuresOfAnOldWindowDoNotCount) {
  AuthLimiter limiter(2, absl::Minutes(1));
  EXPECT_FALSE(limiter.Failed("s", kStart));
  EXPECT_FALSE(limiter.Failed("s", kStart + absl::Minutes(2)));
  EXPECT_TRUE(limiter.Check("s", kStart + absl::Minutes(2)).ok());
  EXPECT_TRUE(limiter.Failed("s", kStart + absl::Minutes(2) + absl::Seconds(1)));
}

TEST(AuthLimiter, KeepsABoundedNumberOfSources) {
  AuthLimiter limiter(2, absl::Minutes(1), 3);
  for (const char* s : {"a", "b", "c"}) limiter.Failed(s, kStart);
  EXPECT_TRUE(limiter.Failed("a", kStart));  // "a" is at its limit.
  EXPECT_FALSE(limiter.Check("a", kStart).ok());
  // A fourth source while none has expired: everything is forgotten.
  limiter.Failed("d", kStart + absl::Seconds(1));
  EXPECT_TRUE(limiter.Check("a", kStart + absl::Seconds(1)).ok());
  EXPECT_TRUE(limiter.Failed("d", kStart + absl::Seconds(2)));
}

}  // namespace
}  // namespace logbook::service
