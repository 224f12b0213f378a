#include "cache/idempotency_store.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace payorch::cache {

// Percent-escapes '%', '{', '}' and, when `escape_colon`, ':'. Ordinary ids
// pass unchanged; the escaping makes RedisKey() injective even for ids that
// contain the separators (trans_id may contain ':', and a '{' or '}' would
// move the Redis Cluster hash tag).
std::string EscapeKeyPart(absl::string_view part, bool escape_colon) {
  std::string out;
  out.reserve(part.size());
  for (char c : part) {
    switch (c) {
      case '%':
        out += "%25";
        break;
      case '{':
        out += "%7B";
        break;
      case '}':
        out += "%7D";
        break;
      case ':':
        out += escape_colon ? "%3A" : ":";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string IdempotencyKey::RedisKey() const {
  // merchant_id's ':' is escaped and trans_id comes last, so the first ':'
  // inside the braces separates the two unambiguously.
  return absl::StrCat("payorch:idem:", EscapeKeyPart(family, true), ":{",
                      EscapeKeyPart(merchant_id, true), ":",
                      EscapeKeyPart(trans_id, false), "}");
}

}  // namespace payorch::cache
