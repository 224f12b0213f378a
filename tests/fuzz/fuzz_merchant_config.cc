// libFuzzer target: the merchant config file (adapters/paykka/
// merchant_config.h). Key paths resolve against an empty directory, so key
// files are never found: the JSON structure and field checks are what is
// exercised, plus ResolveBaseUrl on the raw input.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "adapters/paykka/merchant_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto merchants =
      payorch::paykka::ParseMerchantConfigs(text, "/nonexistent-fuzz-dir");
  if (merchants.ok()) (void)payorch::paykka::RequireHttps(*merchants);
  if (size < 4096) (void)payorch::paykka::ResolveBaseUrl(text);
  return 0;
}
