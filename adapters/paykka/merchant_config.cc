#include "adapters/paykka/merchant_config.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "adapters/paykka/response_mapping.h"
#include "common/crypto.h"
#include "common/errors.h"

namespace payorch::paykka {
namespace {

using json = nlohmann::json;

constexpr const char* kKnownKeys[] = {
    "merchant_id",
    "app_id",
    "private_key_file",
    "paykka_public_key_file",
    "verify_response_signatures",
    "client_key",
    "base_url",
    "query_session_path",
    "response_sign_recipe",
    "duplicate_trans_id_codes",
};

constexpr size_t kMaxDuplicateCodes = 16;

std::string Resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return absl::StrCat(base_dir, "/", path);
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::StatusOr<std::string> RequiredString(const json& m, const char* key,
                                           const std::string& who) {
  auto it = m.find(key);
  if (it == m.end() || !it->is_string() ||
      it->get_ref<const std::string&>().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, ": \"", key, "\" must be a non-empty string"));
  }
  return it->get<std::string>();
}

// "duplicate_trans_id_codes": at most kMaxDuplicateCodes distinct ret_codes,
// none of them one with a meaning of its own (success, not found, ...).
absl::StatusOr<std::vector<std::string>> ParseDuplicateCodes(
    const json& value, const std::string& who) {
  const std::string key = absl::StrCat(who, ": \"duplicate_trans_id_codes\"");
  if (!value.is_array() || value.size() > kMaxDuplicateCodes) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, " must be an array of at most ", kMaxDuplicateCodes,
                     " ret_codes"));
  }
  std::vector<std::string> codes;
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string at = absl::StrCat(key, "[", i, "]");
    if (!value[i].is_string() || !IsRetCode(value[i].get<std::string>())) {
      return absl::InvalidArgumentError(
          absl::StrCat(at, " must be a ret_code (1 to 16 letters or digits)"));
    }
    std::string code = value[i].get<std::string>();
    if (RetCodeHasOwnMeaning(code)) {
      return absl::InvalidArgumentError(absl::StrCat(
          at, " \"", code,
          "\" already means something else to payorch (success, not found, "
          "credentials or a PayKKa failure)"));
    }
    if (std::find(codes.begin(), codes.end(), code) != codes.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(at, " \"", code, "\" is listed twice"));
    }
    codes.push_back(std::move(code));
  }
  return codes;
}

// The optional per-environment protocol settings (merchant_config.h).
absl::Status ParseProtocolSettings(const json& m, const std::string& who,
                                   MerchantConfig* config) {
  if (auto it = m.find("query_session_path"); it != m.end()) {
    if (!it->is_string() || !IsApiPath(it->get_ref<const std::string&>())) {
      return absl::InvalidArgumentError(absl::StrCat(
          who, ": \"query_session_path\" must be a path like /v3/a/b"));
    }
    config->query_session_path = it->get<std::string>();
  }
  if (auto it = m.find("response_sign_recipe"); it != m.end()) {
    absl::StatusOr<ResponseSignRecipe> recipe =
        it->is_string() ? ParseResponseSignRecipe(it->get<std::string>())
                        : absl::InvalidArgumentError("not a string");
    if (!recipe.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(who,
                       ": \"response_sign_recipe\" must be "
                       "\"timestamp_nonce_body\" or \"body\""));
    }
    config->response_sign_recipe = *recipe;
  }
  if (auto it = m.find("duplicate_trans_id_codes"); it != m.end()) {
    absl::StatusOr<std::vector<std::string>> codes =
        ParseDuplicateCodes(*it, who);
    if (!codes.ok()) return codes.status();
    config->duplicate_trans_id_codes = *std::move(codes);
  }
  return absl::OkStatus();
}

// "private_key_file", required: the merchant's signing key.
absl::StatusOr<RsaPrivateKey> PrivateKey(const json& m, const std::string& who,
                                         const std::string& base_dir) {
  absl::StatusOr<std::string> key_file =
      RequiredString(m, "private_key_file", who);
  if (!key_file.ok()) return key_file.status();
  const std::string key_path = Resolve(base_dir, *key_file);
  absl::StatusOr<std::string> key_text = ReadFile(key_path);
  if (!key_text.ok()) {
    return absl::Status(
        key_text.status().code(),
        absl::StrCat(who, ": private_key_file: ", key_text.status().message()));
  }
  absl::StatusOr<RsaPrivateKey> key = RsaPrivateKey::Parse(*key_text);
  // The PEM text is not needed once parsed: leave no copy of the key.
  OPENSSL_cleanse(key_text->data(), key_text->size());
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, ": private_key_file ", key_path,
                     " does not hold an RSA private key (PKCS#8 PEM or "
                     "Base64 expected)"));
  }
  return key;
}

// "paykka_public_key_file", optional: PayKKa's platform public key.
absl::StatusOr<std::optional<RsaPublicKey>> PlatformKey(
    const json& m, const std::string& who, const std::string& base_dir) {
  auto it = m.find("paykka_public_key_file");
  if (it == m.end()) return std::nullopt;
  if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        who, ": \"paykka_public_key_file\" must be a non-empty string"));
  }
  const std::string pub_path = Resolve(base_dir, it->get<std::string>());
  absl::StatusOr<std::string> pub_text = ReadFile(pub_path);
  if (!pub_text.ok()) {
    return absl::Status(pub_text.status().code(),
                        absl::StrCat(who, ": paykka_public_key_file: ",
                                     pub_text.status().message()));
  }
  absl::StatusOr<RsaPublicKey> pub = RsaPublicKey::Parse(*pub_text);
  if (!pub.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, ": paykka_public_key_file ", pub_path,
                     " does not hold an RSA public key (PEM or Base64 "
                     "SubjectPublicKeyInfo expected)"));
  }
  return std::optional<RsaPublicKey>(*std::move(pub));
}

absl::StatusOr<MerchantConfig> ParseMerchant(const json& m, size_t index,
                                             const std::string& base_dir) {
  std::string who = absl::StrCat("merchants[", index, "]");
  if (!m.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(who, " is not an object"));
  }
  // Collected field by field: MerchantConfig holds an RsaPrivateKey, which
  // has no empty state, so it is built at the end.
  struct {
    std::string merchant_id, app_id, client_key, base_url;
    std::optional<RsaPublicKey> platform_public_key;
    bool verify_response_signatures = false;
  } config;
  absl::StatusOr<std::string> id = RequiredString(m, "merchant_id", who);
  if (!id.ok()) return id.status();
  config.merchant_id = *id;
  who = absl::StrCat("merchant ", config.merchant_id);
  for (auto it = m.begin(); it != m.end(); ++it) {
    bool known = false;
    for (const char* k : kKnownKeys) known = known || it.key() == k;
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat(who, ": unknown key \"", it.key(), "\""));
    }
  }
  absl::StatusOr<std::string> app_id = RequiredString(m, "app_id", who);
  if (!app_id.ok()) return app_id.status();
  config.app_id = *app_id;
  absl::StatusOr<std::string> client_key = RequiredString(m, "client_key", who);
  if (!client_key.ok()) return client_key.status();
  config.client_key = *client_key;
  absl::StatusOr<std::string> base = RequiredString(m, "base_url", who);
  if (!base.ok()) return base.status();
  absl::StatusOr<std::string> base_url = ResolveBaseUrl(*base);
  if (!base_url.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, ": ", base_url.status().message()));
  }
  config.base_url = *base_url;

  if (auto it = m.find("verify_response_signatures"); it != m.end()) {
    if (!it->is_boolean()) {
      return absl::InvalidArgumentError(absl::StrCat(
          who, ": \"verify_response_signatures\" must be true or false"));
    }
    config.verify_response_signatures = it->get<bool>();
  }

  absl::StatusOr<RsaPrivateKey> key = PrivateKey(m, who, base_dir);
  if (!key.ok()) return key.status();
  absl::StatusOr<std::optional<RsaPublicKey>> platform =
      PlatformKey(m, who, base_dir);
  if (!platform.ok()) return platform.status();
  config.platform_public_key = *std::move(platform);
  if (!config.platform_public_key && config.verify_response_signatures) {
    return absl::InvalidArgumentError(
        absl::StrCat(who,
                     ": verify_response_signatures needs "
                     "\"paykka_public_key_file\""));
  }
  MerchantConfig out{config.merchant_id,
                     config.app_id,
                     *std::move(key),
                     std::move(config.platform_public_key),
                     config.verify_response_signatures,
                     config.client_key,
                     config.base_url};
  absl::Status settings = ParseProtocolSettings(m, who, &out);
  if (!settings.ok()) return settings;
  return out;
}

}  // namespace

bool IsApiPath(absl::string_view path) {
  if (path.size() < 2 || path.size() > 256 || path[0] != '/') return false;
  for (char c : path) {
    if (!absl::ascii_isalnum(c) && c != '/' && c != '_' && c != '-' &&
        c != '.') {
      return false;
    }
  }
  return !absl::StrContains(path, "//") && !absl::StrContains(path, "..");
}

bool IsRetCode(absl::string_view code) {
  if (code.empty() || code.size() > 16) return false;
  for (char c : code) {
    if (!absl::ascii_isalnum(c)) return false;
  }
  return true;
}

absl::StatusOr<ResponseSignRecipe> ParseResponseSignRecipe(
    absl::string_view name) {
  if (name == "timestamp_nonce_body") {
    return ResponseSignRecipe::kTimestampNonceBody;
  }
  if (name == "body") return ResponseSignRecipe::kBody;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown response signature recipe \"", name, "\""));
}

absl::string_view ResponseSignRecipeName(ResponseSignRecipe recipe) {
  return recipe == ResponseSignRecipe::kBody ? "body" : "timestamp_nonce_body";
}

absl::StatusOr<std::string> ResolveBaseUrl(absl::string_view value) {
  if (value == "sandbox") return std::string(kSandboxBaseUrl);
  if (value == "production") return std::string(kProductionBaseUrl);
  if (value == "production-eu") return std::string(kProductionEuBaseUrl);
  if ((absl::StartsWith(value, "https://") && value.size() > 8) ||
      (absl::StartsWith(value, "http://") && value.size() > 7)) {
    absl::string_view url = value;
    while (absl::ConsumeSuffix(&url, "/")) {
    }
    return std::string(url);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "base_url \"", value,
      "\" is not sandbox, production, production-eu or an http(s) URL"));
}

absl::StatusOr<std::vector<MerchantConfig>> ParseMerchantConfigs(
    absl::string_view json_text, const std::string& base_dir) {
  json root = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) {
    return absl::InvalidArgumentError("merchant config is not a JSON object");
  }
  auto merchants = root.find("merchants");
  if (merchants == root.end() || !merchants->is_array()) {
    return absl::InvalidArgumentError(
        "merchant config needs a \"merchants\" array");
  }
  std::vector<MerchantConfig> out;
  absl::flat_hash_set<std::string> seen;
  for (size_t i = 0; i < merchants->size(); ++i) {
    absl::StatusOr<MerchantConfig> m =
        ParseMerchant((*merchants)[i], i, base_dir);
    if (!m.ok()) return m.status();
    if (!seen.insert(m->merchant_id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("merchant ", m->merchant_id, " is configured twice"));
    }
    out.push_back(*std::move(m));
  }
  return out;
}

absl::Status RequireHttps(const std::vector<MerchantConfig>& merchants) {
  for (const MerchantConfig& m : merchants) {
    if (!absl::StartsWith(m.base_url, "https://")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "merchant ", m.merchant_id, ": base_url ", m.base_url,
          " is not https (plain http only with --paykka_allow_http, for a "
          "local sandbox)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<MerchantConfig>> LoadMerchantConfigs(
    const std::string& json_path) {
  absl::StatusOr<std::string> text = ReadFile(json_path);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::vector<MerchantConfig>> merchants =
      ParseMerchantConfigs(*text, DirName(json_path));
  if (!merchants.ok()) {
    return absl::Status(
        merchants.status().code(),
        absl::StrCat(json_path, ": ", merchants.status().message()));
  }
  return merchants;
}

}  // namespace payorch::paykka

namespace payorch::paykka {

std::vector<std::string> MerchantConfigFiles(const std::string& json_path) {
  std::vector<std::string> files = {json_path};
  absl::StatusOr<std::string> text = ReadFile(json_path);
  if (!text.ok()) return files;
  json root = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) return files;
  auto merchants = root.find("merchants");
  if (merchants == root.end() || !merchants->is_array()) return files;
  const std::string base_dir = DirName(json_path);
  for (const json& m : *merchants) {
    if (!m.is_object()) continue;
    for (const char* key : {"private_key_file", "paykka_public_key_file"}) {
      auto it = m.find(key);
      if (it != m.end() && it->is_string()) {
        files.push_back(Resolve(base_dir, it->get<std::string>()));
      }
    }
  }
  return files;
}

}  // namespace payorch::paykka
