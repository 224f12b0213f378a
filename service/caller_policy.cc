#include "service/caller_policy.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "nlohmann/json.hpp"

namespace payorch::service {
namespace {

bool IsPolicyMethod(const std::string& m) {
  return std::any_of(std::begin(kPolicyMethods), std::end(kPolicyMethods),
                     [&](const char* known) { return m == known; });
}

// Reads a non-empty list of non-empty strings at callers[i].<key>.
absl::Status ReadList(const nlohmann::json& entry, const std::string& where,
                      const char* key, std::vector<std::string>* out) {
  auto it = entry.find(key);
  if (it == entry.end() || !it->is_array() || it->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".", key, ": a non-empty list is required"));
  }
  for (const auto& v : *it) {
    if (!v.is_string() || v.get<std::string>().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".", key, ": entries must be non-empty strings"));
    }
    out->push_back(v.get<std::string>());
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CallerPolicy> CallerPolicy::Parse(absl::string_view json) {
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError("caller policy: not a JSON object");
  }
  for (const auto& [key, value] : doc.items()) {
    if (key != "callers") {
      return absl::InvalidArgumentError("caller policy: unknown key " + key);
    }
  }
  auto callers = doc.find("callers");
  if (callers == doc.end() || !callers->is_array()) {
    return absl::InvalidArgumentError(
        "caller policy: callers: a list is required");
  }
  CallerPolicy policy;
  for (size_t i = 0; i < callers->size(); ++i) {
    const nlohmann::json& entry = (*callers)[i];
    const std::string where = absl::StrCat("callers[", i, "]");
    if (!entry.is_object()) {
      return absl::InvalidArgumentError(where + ": an object is required");
    }
    for (const auto& [key, value] : entry.items()) {
      if (key != "identity" && key != "merchants" && key != "methods") {
        return absl::InvalidArgumentError(where + ": unknown key " + key);
      }
    }
    auto identity = entry.find("identity");
    if (identity == entry.end() || !identity->is_string() ||
        identity->get<std::string>().empty()) {
      return absl::InvalidArgumentError(where + ".identity: required");
    }
    std::vector<std::string> merchants, methods;
    if (auto s = ReadList(entry, where, "merchants", &merchants); !s.ok())
      return s;
    if (auto s = ReadList(entry, where, "methods", &methods); !s.ok()) return s;
    Grant grant;
    for (auto& m : merchants) {
      if (m == "*") grant.any_merchant = true;
      grant.merchants.insert(std::move(m));
    }
    for (auto& m : methods) {
      if (m == "*") {
        grant.any_method = true;
      } else if (!IsPolicyMethod(m)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".methods: unknown RPC ", m));
      }
      grant.methods.insert(std::move(m));
    }
    if (!policy.callers_.emplace(identity->get<std::string>(), std::move(grant))
             .second) {
      return absl::InvalidArgumentError(where + ".identity: listed twice");
    }
  }
  return policy;
}

bool CallerPolicy::Allows(absl::string_view identity, absl::string_view method,
                          absl::string_view merchant_id) const {
  auto it = callers_.find(identity);
  if (it == callers_.end()) return false;
  const Grant& g = it->second;
  return (g.any_method || g.methods.contains(method)) &&
         (g.any_merchant || g.merchants.contains(merchant_id));
}

bool CallerPolicy::Knows(absl::string_view identity) const {
  return callers_.contains(identity);
}

absl::StatusOr<std::unique_ptr<CallerPolicyWatcher>> CallerPolicyWatcher::Load(
    std::string path) {
  std::unique_ptr<CallerPolicyWatcher> watcher(
      new CallerPolicyWatcher(std::move(path)));
  if (absl::Status s = watcher->ReloadIfChanged(); !s.ok()) return s;
  return watcher;
}

std::shared_ptr<const CallerPolicy> CallerPolicyWatcher::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

absl::Status CallerPolicyWatcher::ReloadIfChanged() {
  auto stamp = StampFile(path_);
  if (!stamp.ok()) {
    return absl::NotFoundError(
        absl::StrCat("caller policy ", stamp.status().message()));
  }
  {
    absl::MutexLock lock(&mu_);
    if (current_ != nullptr && stamp_ == *stamp) return absl::OkStatus();
  }
  auto text = ReadFile(path_);
  if (!text.ok()) return text.status();
  auto policy = CallerPolicy::Parse(*text);
  absl::MutexLock lock(&mu_);
  // Remember the rejected version too, so that it is reported once.
  stamp_ = *stamp;
  if (!policy.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": ", policy.status().message()));
  }
  current_ = std::make_shared<const CallerPolicy>(std::move(*policy));
  return absl::OkStatus();
}

}  // namespace payorch::service
