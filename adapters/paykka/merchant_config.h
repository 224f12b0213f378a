#ifndef PAYORCH_ADAPTERS_PAYKKA_MERCHANT_CONFIG_H_
#define PAYORCH_ADAPTERS_PAYKKA_MERCHANT_CONFIG_H_

// Loading merchants' PayKKa credentials. The file (JSON):
//
//   {"merchants": [{
//      "merchant_id": "M1",                        // required, unique
//      "app_id": "A1",                             // required (x-paykka-appid)
//      "private_key_file": "/secrets/m1/private_key.pem",   // required
//      "paykka_public_key_file": "/secrets/m1/paykka_public.pem",
//                          // required when verify_response_signatures
//      "verify_response_signatures": true,         // optional, default false
//      "client_key": "ck_...",                     // required
//      "base_url": "sandbox",  // "sandbox" | "production" | "production-eu"
//                              // | any http(s)://host[:port] URL
//      // Per-environment protocol settings, optional (defaults shown);
//      // `payorchctl probe` reports the values an environment needs:
//      "query_session_path": "/v3/payment/acq/session/query",
//      "response_sign_recipe": "timestamp_nonce_body",  // | "body"
//      // ret_codes of PayKKa's "duplicate trans_id" refusal (at most 16,
//      // none with a meaning of its own such as 000000 or 206024; [] turns
//      // the fast path off; response_mapping.h):
//      "duplicate_trans_id_codes": ["010000"]
//   }]}
//
// Keys come from files only (PEM or bare Base64 PKCS#8 / SPKI); relative key
// paths are resolved against the config file's directory. Errors name the
// merchant and the file, never key contents. Unknown keys are errors (a
// misspelt "verify_response_signature" must not silently turn checks off).

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "adapters/paykka/paykka_client.h"

namespace payorch::paykka {

inline constexpr absl::string_view kSandboxBaseUrl =
    "https://openapi-sandbox.paykka.com";
inline constexpr absl::string_view kProductionBaseUrl =
    "https://openapi.paykka.com";
inline constexpr absl::string_view kProductionEuBaseUrl =
    "https://openapi.eu.paykka.com";

// Reads and validates the file at `json_path`. kInvalidArgument for a
// malformed file, a missing field, a duplicate merchant_id or an unusable
// key; kNotFound / kPermissionDenied for unreadable files.
absl::StatusOr<std::vector<MerchantConfig>> LoadMerchantConfigs(
    const std::string& json_path);

// The files a configuration at `json_path` is made of: the file itself, then
// every key file its merchants name (resolved as LoadMerchantConfigs does),
// for change detection. Best effort: a file that cannot be read or parsed
// gives `json_path` alone (loading it reports the error).
std::vector<std::string> MerchantConfigFiles(const std::string& json_path);

// kInvalidArgument naming the first merchant whose base_url is not https
// (plain http is for the local sandbox only: payorchd --paykka_allow_http).
absl::Status RequireHttps(const std::vector<MerchantConfig>& merchants);

// The same from text; relative key paths are resolved against `base_dir`.
absl::StatusOr<std::vector<MerchantConfig>> ParseMerchantConfigs(
    absl::string_view json_text, const std::string& base_dir);

// A request path: '/' then letters, digits, '/', '_', '-', '.'; no "//" or
// "..", at most 256 characters.
bool IsApiPath(absl::string_view path);

// 1 to 16 ASCII letters or digits (a PayKKa ret_code).
bool IsRetCode(absl::string_view code);

// "timestamp_nonce_body" or "body"; kInvalidArgument otherwise.
absl::StatusOr<ResponseSignRecipe> ParseResponseSignRecipe(
    absl::string_view name);
absl::string_view ResponseSignRecipeName(ResponseSignRecipe recipe);

// "sandbox" / "production" / "production-eu" or an http(s) URL (trailing
// '/' removed). kInvalidArgument otherwise.
absl::StatusOr<std::string> ResolveBaseUrl(absl::string_view value);

}  // namespace payorch::paykka

#endif  // PAYORCH_ADAPTERS_PAYKKA_MERCHANT_CONFIG_H_
