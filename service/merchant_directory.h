#ifndef PAYORCH_SERVICE_MERCHANT_DIRECTORY_H_
#define PAYORCH_SERVICE_MERCHANT_DIRECTORY_H_

// The merchant configuration in force, and its hot reload.
//
// MerchantDirectory holds an immutable snapshot (merchant_id -> config, keys
// included) and swaps in a new one atomically. A call looks its merchant up
// once and keeps that shared_ptr until it finishes, so in-flight calls end
// with the configuration (and key) they started with while new calls get the
// new one.
//
// MerchantConfigWatcher re-reads the configuration when any of its files
// changes (the JSON file and every key file it names; stat through
// symlinks, so Kubernetes' atomic `..data` swap of a mounted Secret or
// ConfigMap is seen), validates it with the same loader as at start, and
// swaps it in. A configuration that does not validate is rejected and the
// previous one keeps serving; it is tried again when a file changes again.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "adapters/paykka/paykka_client.h"
#include "common/file_stamp.h"

namespace payorch::service {

// merchant_id -> its PayKKa configuration.
using MerchantRegistry =
    absl::flat_hash_map<std::string,
                        std::shared_ptr<const paykka::MerchantConfig>>;

// The registry for merchants loaded by paykka::LoadMerchantConfigs() (which
// has already rejected duplicates; a later duplicate would win here).
MerchantRegistry MakeMerchantRegistry(
    std::vector<paykka::MerchantConfig> merchants);

// A shared handle: copies see the same snapshot and the same Replace().
// Thread-safe.
class MerchantDirectory {
 public:
  MerchantDirectory() : MerchantDirectory(MerchantRegistry{}) {}
  // A directory starting with `registry` (implicit: a fixed registry is a
  // directory nobody replaces).
  MerchantDirectory(MerchantRegistry registry);  // NOLINT

  // The merchant's configuration in force now; null if not configured.
  std::shared_ptr<const paykka::MerchantConfig> Find(
      absl::string_view merchant_id) const;
  // The whole snapshot in force now (never null).
  std::shared_ptr<const MerchantRegistry> Snapshot() const;
  // Makes `registry` the snapshot for every later Find().
  void Replace(MerchantRegistry registry) const;

 private:
  struct State {
    absl::Mutex mu;
    std::shared_ptr<const MerchantRegistry> current ABSL_GUARDED_BY(mu);
  };
  std::shared_ptr<State> state_;
};

// What one look at the files did.
struct MerchantReload {
  enum class Result { kUnchanged, kApplied, kRejected };
  Result result = Result::kUnchanged;
  absl::Status error;    // why it was rejected
  size_t merchants = 0;  // merchants in force afterwards
};

class MerchantConfigWatcher {
 public:
  // Reads and validates the configuration at a path, exactly as at start.
  using Loader =
      std::function<absl::StatusOr<std::vector<paykka::MerchantConfig>>(
          const std::string& path)>;
  // Lists the files a configuration is made of (paykka::MerchantConfigFiles).
  using FileLister =
      std::function<std::vector<std::string>(const std::string& path)>;

  // The first load: its error when the configuration does not validate.
  static absl::StatusOr<std::unique_ptr<MerchantConfigWatcher>> Load(
      std::string path, Loader load, FileLister files);

  const MerchantDirectory& directory() const { return directory_; }
  const std::string& path() const { return path_; }

  // Looks at the files; when any changed since the last look, reloads.
  // Call from one thread at a time (payorchd: its 0.5 s ticker).
  MerchantReload ReloadIfChanged();

 private:
  MerchantConfigWatcher(std::string path, Loader load, FileLister files)
      : path_(std::move(path)),
        load_(std::move(load)),
        files_(std::move(files)) {}
  // Loads and, when valid, swaps in; `stamp_` is the state it was read in.
  absl::Status LoadNow();

  const std::string path_;
  const Loader load_;
  const FileLister files_;
  MerchantDirectory directory_;
  // The files of the configuration last read, and their state then.
  std::vector<std::string> watched_;
  FileSetStamp stamp_;
};

}  // namespace payorch::service

#endif  // PAYORCH_SERVICE_MERCHANT_DIRECTORY_H_
