// Hot reload of the merchant configuration and keys over real files: a key
// rotated in place or by Kubernetes' `..data` symlink swap is picked up, an
// invalid configuration is rejected while the previous one keeps serving, and
// a snapshot taken before a reload (a call in flight) keeps its key.
#include "service/merchant_directory.h"

#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "adapters/paykka/merchant_config.h"
#include "gtest/gtest.h"
#include "tests/adapters/paykka/test_merchant.h"
#include "tests/testing/subprocess.h"

namespace payorch::service {
namespace {

using paykka::testing::TestKey;
using payorch::testing::TempDir;
using Result = MerchantReload::Result;

std::string Config(const std::string& key_file,
                   const std::string& merchant = "M1") {
  return absl::StrCat(R"({"merchants":[{"merchant_id":")", merchant,
                      R"(","app_id":"A1","private_key_file":")", key_file,
                      R"(","client_key":"ck","base_url":"sandbox"}]})");
}

// True when `merchant` signs with TestKey(which).
bool SignsWith(const paykka::MerchantConfig& merchant, int which) {
  auto sig = merchant.private_key.SignSha256("payload");
  auto pub = RsaPublicKey::Parse(TestKey(which).PublicKeyPem());
  return sig.ok() && pub.ok() && pub->VerifySha256("payload", *sig).ok();
}

absl::StatusOr<std::unique_ptr<MerchantConfigWatcher>> Watch(
    const std::string& path) {
  return MerchantConfigWatcher::Load(path, &paykka::LoadMerchantConfigs,
                                     &paykka::MerchantConfigFiles);
}

// Writes `content` to `name` next to it, then renames it into place (as an
// operator should: the watcher never sees a half-written file).
void Replace(const TempDir& dir, const std::string& name,
             const std::string& content) {
  dir.Write(name + ".tmp", content);
  ASSERT_EQ(rename(dir.File(name + ".tmp").c_str(), dir.File(name).c_str()), 0);
}

TEST(MerchantDirectoryTest, ReplaceLeavesSnapshotsTakenBefore) {
  MerchantDirectory directory;
  EXPECT_EQ(directory.Find("M1"), nullptr);
  MerchantDirectory copy = directory;  // a handle on the same state
  paykka::MerchantConfig m = paykka::testing::TestMerchant();
  copy.Replace(MakeMerchantRegistry({m}));
  auto in_flight = directory.Find("M1");
  ASSERT_NE(in_flight, nullptr);
  directory.Replace({});
  EXPECT_EQ(copy.Find("M1"), nullptr);
  EXPECT_EQ(in_flight->merchant_id, "M1");  // still usable
}

TEST(MerchantConfigWatcherTest, KeyRotatedOnDiskIsPickedUp) {
  TempDir dir;
  dir.Write("key.pem", TestKey(0).ToPkcs8Pem());
  const std::string path = dir.Write("merchants.json", Config("key.pem"));
  auto watcher = Watch(path);
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  const MerchantDirectory& directory = (*watcher)->directory();
  auto before = directory.Find("M1");
  ASSERT_NE(before, nullptr);
  EXPECT_TRUE(SignsWith(*before, 0));
  EXPECT_EQ((*watcher)->ReloadIfChanged().result, Result::kUnchanged);

  // Only the key file changes (the config file is untouched).
  Replace(dir, "key.pem", TestKey(1).ToPkcs8Pem());
  MerchantReload reload = (*watcher)->ReloadIfChanged();
  EXPECT_EQ(reload.result, Result::kApplied) << reload.error;
  EXPECT_EQ(reload.merchants, 1u);
  EXPECT_TRUE(SignsWith(*directory.Find("M1"), 1));
  EXPECT_TRUE(SignsWith(*before, 0));  // a call in flight keeps its key
  EXPECT_EQ((*watcher)->ReloadIfChanged().result, Result::kUnchanged);
}

TEST(MerchantConfigWatcherTest, InvalidConfigIsRejectedAndOldOneServes) {
  TempDir dir;
  dir.Write("key.pem", TestKey(0).ToPkcs8Pem());
  const std::string path = dir.Write("merchants.json", Config("key.pem"));
  auto watcher = Watch(path);
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  const MerchantDirectory& directory = (*watcher)->directory();

  // A key file that does not exist, then a file that is not JSON.
  Replace(dir, "merchants.json", Config("missing.pem", "M2"));
  MerchantReload reload = (*watcher)->ReloadIfChanged();
  EXPECT_EQ(reload.result, Result::kRejected);
  EXPECT_NE(reload.error.message().find("missing.pem"), std::string::npos)
      << reload.error;
  EXPECT_EQ(reload.merchants, 1u);
  ASSERT_NE(directory.Find("M1"), nullptr);
  EXPECT_EQ(directory.Find("M2"), nullptr);
  // Reported once, not at every look.
  EXPECT_EQ((*watcher)->ReloadIfChanged().result, Result::kUnchanged);
  Replace(dir, "merchants.json", "{\"merchants\": [");
  EXPECT_EQ((*watcher)->ReloadIfChanged().result, Result::kRejected);
  EXPECT_TRUE(SignsWith(*directory.Find("M1"), 0));

  // The missing key appears: the config that named it now validates.
  Replace(dir, "merchants.json", Config("missing.pem", "M2"));
  EXPECT_EQ((*watcher)->ReloadIfChanged().result, Result::kRejected);
  dir.Write("missing.pem", TestKey(1).ToPkcs8Pem());
  reload = (*watcher)->ReloadIfChanged();
  EXPECT_EQ(reload.result, Result::kApplied) << reload.error;
  EXPECT_EQ(directory.Find("M1"), nullptr);
  ASSERT_NE(directory.Find("M2"), nullptr);
  EXPECT_TRUE(SignsWith(*directory.Find("M2"), 1));
}

// The layout of a mounted Secret: merchants.json and key.pem are symlinks
// into ..data, itself a symlink to a timestamped directory that Kubernetes
// replaces by renaming a new ..data symlink over the old one.
TEST(MerchantConfigWatcherTest, KubernetesDataSymlinkSwapIsPickedUp) {
  TempDir dir;
  auto version = [&](const std::string& name, int key) {
    ASSERT_EQ(mkdir(dir.File(name).c_str(), 0700), 0);
    dir.Write(name + "/key.pem", TestKey(key).ToPkcs8Pem());
    dir.Write(name + "/merchants.json", Config("key.pem"));
  };
  version("..2026_11_30_01_00_00.1", 0);
  ASSERT_EQ(symlink("..2026_11_30_01_00_00.1", dir.File("..data").c_str()), 0);
  for (const char* f : {"merchants.json", "key.pem"}) {
    ASSERT_EQ(symlink(absl::StrCat("..data/", f).c_str(), dir.File(f).c_str()),
              0);
  }
  auto watcher = Watch(dir.File("merchants.json"));
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  EXPECT_TRUE(SignsWith(*(*watcher)->directory().Find("M1"), 0));

  version("..2026_11_30_01_05_00.2", 1);
  ASSERT_EQ(symlink("..2026_11_30_01_05_00.2", dir.File("..data_tmp").c_str()),
            0);
  ASSERT_EQ(rename(dir.File("..data_tmp").c_str(), dir.File("..data").c_str()),
            0);
  MerchantReload reload = (*watcher)->ReloadIfChanged();
  EXPECT_EQ(reload.result, Result::kApplied) << reload.error;
  EXPECT_TRUE(SignsWith(*(*watcher)->directory().Find("M1"), 1));
}

TEST(MerchantConfigWatcherTest, FirstLoadFailsOnAnInvalidConfig) {
  TempDir dir;
  auto watcher = Watch(dir.Write("merchants.json", Config("nope.pem")));
  EXPECT_FALSE(watcher.ok());
}

TEST(MerchantConfigFilesTest, ListsTheConfigAndItsResolvedKeyFiles) {
  TempDir dir;
  const std::string path =
      dir.Write("merchants.json",
                R"({"merchants":[{"private_key_file":"a.pem",
          "paykka_public_key_file":"/abs/p.pem"},{"private_key_file":"b.pem"}]})");
  EXPECT_EQ(paykka::MerchantConfigFiles(path),
            (std::vector<std::string>{path, dir.File("a.pem"), "/abs/p.pem",
                                      dir.File("b.pem")}));
  EXPECT_EQ(paykka::MerchantConfigFiles(dir.File("absent.json")),
            (std::vector<std::string>{dir.File("absent.json")}));
}

}  // namespace
}  // namespace payorch::service
