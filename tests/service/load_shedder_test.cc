#include "service/load_shedder.h"

#include "common/errors.h"
#include "gtest/gtest.h"

namespace payorch::service {
namespace {

TEST(LoadShedderTest, InFlightCapRefusesWithRetryInfoUntilReleased) {
  LoadShedderOptions o;
  o.max_in_flight = 2;
  LoadShedder shedder(o);
  EXPECT_TRUE(shedder.Admit("M1").ok());
  EXPECT_TRUE(shedder.Admit("M2").ok());
  absl::Status refused = shedder.Admit("M1");
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ReasonOf(refused), Reason::kOverloaded);
  EXPECT_TRUE(RetryDelayOf(refused).has_value());
  shedder.Release();
  EXPECT_TRUE(shedder.Admit("M1").ok());
  EXPECT_EQ(shedder.in_flight(), 2);
}

TEST(LoadShedderTest, MerchantBucketRefillsAtItsRateAndIsPerMerchant) {
  FakeClock clock;
  LoadShedderOptions o;
  o.merchant_rate = 10;
  o.merchant_burst = 2;
  LoadShedder shedder(o, &clock);
  EXPECT_TRUE(shedder.Admit("M1").ok());
  EXPECT_TRUE(shedder.Admit("M1").ok());
  EXPECT_FALSE(shedder.Admit("M1").ok());
  EXPECT_TRUE(shedder.Admit("M2").ok());  // its own bucket
  clock.Advance(absl::Milliseconds(100));
  EXPECT_TRUE(shedder.Admit("M1").ok());
  EXPECT_FALSE(shedder.Admit("M1").ok());
}

TEST(LoadShedderTest, MerchantIdsBeyondTheBucketCapShareOne) {
  FakeClock clock;
  LoadShedderOptions o;
  o.merchant_rate = 1;
  o.merchant_burst = 1;
  o.max_buckets = 2;
  LoadShedder shedder(o, &clock);
  EXPECT_TRUE(shedder.Admit("A").ok());
  EXPECT_TRUE(shedder.Admit("B").ok());
  EXPECT_TRUE(shedder.Admit("C").ok());   // the shared bucket's token
  EXPECT_FALSE(shedder.Admit("D").ok());  // the same shared bucket
}

}  // namespace
}  // namespace payorch::service
