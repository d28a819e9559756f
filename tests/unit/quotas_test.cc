// Quotas per principal: the refusal each kind gives at its limit, and a
// book that counts each principal apart and forgets one that holds nothing.
#include "quotas.h"

#include <gtest/gtest.h>

namespace logbook::service {
namespace {

Principal Named(const std::string& name, Quotas quotas) {
  Principal p;
  p.name = name;
  p.quotas = quotas;
  return p;
}

TEST(Quotas, EachKindIsRefusedAtItsLimitWithItsOwnMessage) {
  EXPECT_TRUE(CheckQuota(QuotaKind::kSubscriptions, "ann", 9, 10).ok());
  EXPECT_EQ(CheckQuota(QuotaKind::kSubscriptions, "ann", 10, 10),
            absl::ResourceExhaustedError(
                "quota: ann has 10 subscriptions open, its quota; close one first"));
  EXPECT_EQ(CheckQuota(QuotaKind::kConsumers, "bob", 2, 2),
            absl::ResourceExhaustedError(
                "quota: bob has 2 consumers open, its quota; close one first"));
  EXPECT_EQ(CheckQuota(QuotaKind::kAppendsInFlight, "cy", 64, 64),
            absl::ResourceExhaustedError(
                "quota: cy has 64 appends in flight, its quota; retry once one is answered"));
  // 0 is no limit.
  EXPECT_TRUE(CheckQuota(QuotaKind::kAppendsInFlight, "cy", 1000000, 0).ok());
  EXPECT_EQ(QuotaLimit(Quotas{1, 2, 3}, QuotaKind::kSubscriptions), 1u);
  EXPECT_EQ(QuotaLimit(Quotas{1, 2, 3}, QuotaKind::kConsumers), 2u);
  EXPECT_EQ(QuotaLimit(Quotas{1, 2, 3}, QuotaKind::kAppendsInFlight), 3u);
}

TEST(Quotas, TheBookCountsEachPrincipalAndKindApart) {
  QuotaBook book;
  const Principal ann = Named("ann", Quotas{2, 1, 0});
  const Principal bob = Named("bob", Quotas{1, 1, 1});
  EXPECT_TRUE(book.Take(QuotaKind::kSubscriptions, ann).ok());
  EXPECT_TRUE(book.Take(QuotaKind::kSubscriptions, ann).ok());
  EXPECT_EQ(book.Take(QuotaKind::kSubscriptions, ann).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(book.Held(QuotaKind::kSubscriptions, "ann"), 2u);  // The refusal took nothing.
  EXPECT_TRUE(book.Take(QuotaKind::kConsumers, ann).ok());      // Another kind.
  EXPECT_TRUE(book.Take(QuotaKind::kSubscriptions, bob).ok());  // Another principal.
  EXPECT_EQ(book.Take(QuotaKind::kSubscriptions, bob).code(),
            absl::StatusCode::kResourceExhausted);
  for (int i = 0; i < 100; ++i) {
    EXPECT_TRUE(book.Take(QuotaKind::kAppendsInFlight, ann).ok());  // No limit.
  }
  EXPECT_EQ(book.Held(QuotaKind::kAppendsInFlight, "ann"), 100u);

  book.Give(QuotaKind::kSubscriptions, "ann");
  EXPECT_EQ(book.Held(QuotaKind::kSubscriptions, "ann"), 1u);
  EXPECT_TRUE(book.Take(QuotaKind::kSubscriptions, ann).ok());
  // A Give without a Take changes nothing.
  book.Give(QuotaKind::kConsumers, "nobody");
  book.Give(QuotaKind::kConsumers, "bob");
  EXPECT_EQ(book.Held(QuotaKind::kConsumers, "nobody"), 0u);
  EXPECT_EQ(book.Held(QuotaKind::kSubscriptions, "bob"), 1u);
  // A quota lowered while calls are open (a reload) refuses until they end.
  const Principal ann_now = Named("ann", Quotas{1, 1, 0});
  EXPECT_EQ(book.Take(QuotaKind::kSubscriptions, ann_now).code(),
            absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace logbook::service
