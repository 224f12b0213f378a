#include "service/merchant_directory.h"

#include <utility>

namespace payorch::service {

MerchantRegistry MakeMerchantRegistry(
    std::vector<paykka::MerchantConfig> merchants) {
  MerchantRegistry registry;
  for (paykka::MerchantConfig& m : merchants) {
    std::string id = m.merchant_id;
    registry[id] = std::make_shared<const paykka::MerchantConfig>(std::move(m));
  }
  return registry;
}

MerchantDirectory::MerchantDirectory(MerchantRegistry registry)
    : state_(std::make_shared<State>()) {
  Replace(std::move(registry));
}

std::shared_ptr<const paykka::MerchantConfig> MerchantDirectory::Find(
    absl::string_view merchant_id) const {
  std::shared_ptr<const MerchantRegistry> snapshot = Snapshot();
  auto it = snapshot->find(merchant_id);
  return it == snapshot->end() ? nullptr : it->second;
}

std::shared_ptr<const MerchantRegistry> MerchantDirectory::Snapshot() const {
  absl::MutexLock lock(&state_->mu);
  return state_->current;
}

void MerchantDirectory::Replace(MerchantRegistry registry) const {
  auto next = std::make_shared<const MerchantRegistry>(std::move(registry));
  std::shared_ptr<const MerchantRegistry> previous;
  absl::MutexLock lock(&state_->mu);
  // The previous snapshot is released outside the lock when this was its
  // last reference (declared before the lock, destroyed after it).
  previous = std::exchange(state_->current, std::move(next));
}

absl::StatusOr<std::unique_ptr<MerchantConfigWatcher>>
MerchantConfigWatcher::Load(std::string path, Loader load, FileLister files) {
  std::unique_ptr<MerchantConfigWatcher> watcher(new MerchantConfigWatcher(
      std::move(path), std::move(load), std::move(files)));
  if (absl::Status s = watcher->LoadNow(); !s.ok()) return s;
  return watcher;
}

absl::Status MerchantConfigWatcher::LoadNow() {
  // Stamped before reading: a change made while reading shows at the next
  // look and is read then.
  watched_ = files_(path_);
  stamp_ = StampFiles(watched_);
  auto merchants = load_(path_);
  if (!merchants.ok()) return merchants.status();
  directory_.Replace(MakeMerchantRegistry(*std::move(merchants)));
  return absl::OkStatus();
}

MerchantReload MerchantConfigWatcher::ReloadIfChanged() {
  MerchantReload reload;
  if (StampFiles(watched_) == stamp_) {
    reload.merchants = directory_.Snapshot()->size();
    return reload;
  }
  absl::Status loaded = LoadNow();
  reload.result = loaded.ok() ? MerchantReload::Result::kApplied
                              : MerchantReload::Result::kRejected;
  reload.error = std::move(loaded);
  reload.merchants = directory_.Snapshot()->size();
  return reload;
}

}  // namespace payorch::service
