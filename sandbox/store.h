#ifndef PAYORCH_SANDBOX_STORE_H_
#define PAYORCH_SANDBOX_STORE_H_

// The sandbox's PayKKa state machine: merchants, sessions, orders, tokens and
// recurring agreements, the virtual clock, and the "actually created"
// counters. Pure logic, no I/O: the server hands in parsed, authenticated
// request bodies and gets back an HTTP status and a JSON envelope. Not
// thread-safe: owned by the server's loop thread.

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/crypto.h"
#include "nlohmann/json.hpp"

namespace payorch::sandbox {

using Json = nlohmann::json;

// Compact JSON; invalid UTF-8 is replaced rather than thrown on.
inline std::string DumpJson(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// One public key a merchant signs requests with. As at PayKKa, a merchant
// rotating its key registers the new one before retiring the old one (control
// API "public-keys"), so both verify meanwhile.
struct MerchantKey {
  RsaPublicKey key;
  bool retired = false;  // no longer verifies
  int64_t verified = 0;  // requests it verified
};

struct Merchant {
  std::string merchant_id;
  std::string app_id;
  std::string client_key;
  std::vector<MerchantKey> keys;  // [0]: the configured key
  // Allows plain card numbers (payment.card_no) on Initiate Transaction.
  bool pci = false;
};

// What a create (Create Session, Initiate Transaction) with a trans_id that
// the merchant already used gets.
enum class DuplicateTransIdMode {
  kReject,          // the refusal below; nothing created
  kReturnExisting,  // the existing object of the same kind, else the refusal
  kCreate,          // a second object (a PayKKa without the uniqueness check)
};

struct DuplicatePolicy {
  DuplicateTransIdMode mode = DuplicateTransIdMode::kReject;
  int http_status = 400;
  std::string ret_code = "010000";
  std::string ret_msg = "duplicate trans_id";
};

// {"mode":"reject|return_existing|create","http_status":N,"ret_code":"...",
//  "ret_msg":"..."}; absent fields take DuplicatePolicy's defaults.
absl::StatusOr<DuplicatePolicy> ParseDuplicatePolicy(const nlohmann::json& j);
nlohmann::json DuplicatePolicyToJson(const DuplicatePolicy& p);
absl::StatusOr<DuplicateTransIdMode> ParseDuplicateMode(const std::string& s);

struct StoreOptions {
  DuplicatePolicy duplicate_trans_id;
  // expire_time when Create Session omits it.
  absl::Duration default_session_ttl = absl::Minutes(30);
  // Base for session_url / 3DS URLs, e.g. "http://127.0.0.1:8080".
  std::string public_base_url;
};

// An HTTP status and the body to send as JSON.
struct ApiResponse {
  int http_status = 200;
  Json body;
};

// A notification to POST when an order reaches a final state.
struct WebhookEvent {
  std::string app_id;
  std::string url;
  std::string order_id;
  std::string notify_type;
  Json body;
};

// The fields of an Initiate Transaction request.
struct InitiateRequest {
  std::string payment_type, trans_id, currency, notify_url, return_url,
      capture_method = "AUTOMATIC", authorisation_type = "FINAL_AUTH",
      agreement_id, token, shopper_reference, token_usage, card_no;
  int64_t amount = 0;
  std::optional<bool> mit, store;
  // A charge on a stored card (merchant-initiated), not a plain card.
  bool subsequent() const { return !agreement_id.empty() || !token.empty(); }
};

class Store {
 public:
  Store(StoreOptions options, std::vector<Merchant> merchants);

  const Merchant* FindMerchantByAppId(const std::string& app_id) const;
  const Merchant* FindMerchant(const std::string& merchant_id) const;
  // Key rotation (control API): registers another public key (its index),
  // retires one, lists them with their counts; kNotFound for an unknown
  // merchant or index.
  absl::StatusOr<int> AddPublicKey(const std::string& merchant_id,
                                   RsaPublicKey key);
  absl::Status RetirePublicKey(const std::string& merchant_id, int index);
  absl::StatusOr<Json> PublicKeysJson(const std::string& merchant_id) const;
  // Counts a request that key `index` of `merchant` verified.
  void NoteVerified(const Merchant& merchant, size_t index);
  void set_public_base_url(std::string url) {
    options_.public_base_url = std::move(url);
  }

  // The sandbox's virtual clock: real time plus an offset moved by tests.
  absl::Time Now() const { return absl::Now() + clock_offset_; }
  void AdvanceClock(absl::Duration d) { clock_offset_ += d; }
  Json ClockJson() const;

  const DuplicatePolicy& duplicate_policy() const {
    return options_.duplicate_trans_id;
  }
  void set_duplicate_policy(DuplicatePolicy p) {
    options_.duplicate_trans_id = std::move(p);
  }

  // PayKKa v3 operations. `req` is the parsed body, already authenticated
  // and known to carry a merchant_id of `merchant`. An object created with
  // `invisible_for` > 0 is not found by queries until that much real time
  // has passed.
  ApiResponse CreateSession(
      const Merchant& merchant, const Json& req,
      absl::Duration invisible_for = absl::ZeroDuration());
  ApiResponse QuerySession(const Merchant& merchant, const Json& req);
  ApiResponse QueryTransaction(const Merchant& merchant, const Json& req);
  ApiResponse InitiateTransaction(
      const Merchant& merchant, const Json& req,
      absl::Duration invisible_for = absl::ZeroDuration());
  ApiResponse CancelAgreement(const Merchant& merchant, const Json& req);
  // After the payment (store_postpay section of store.cc): Refund, Refund
  // Query, Capture (one per order; a partial one releases the rest) and
  // Void, with the order's balances.
  ApiResponse Refund(const Merchant& merchant, const Json& req);
  ApiResponse QueryRefund(const Merchant& merchant, const Json& req);
  ApiResponse Capture(const Merchant& merchant, const Json& req);
  ApiResponse Void(const Merchant& merchant, const Json& req);

  // Control path (shopper simulation). Bodies are plain JSON; errors are
  // {"error": "..."} with a 4xx status.
  ApiResponse PaySession(const std::string& session_id, const Json& req);
  ApiResponse CompleteOrder(const std::string& order_id, const Json& req);
  ApiResponse SetTokenOutcome(const std::string& token, const Json& req);
  // {"outcome": "SUCCESS|FAILURE", "error_code", "error_description"}: ends
  // a REVIEWING refund.
  ApiResponse CompleteRefund(const std::string& refund_order_id,
                             const Json& req);
  // {"mode": "success|review"}: new refunds succeed at once (the default)
  // or wait in REVIEWING for CompleteRefund.
  ApiResponse SetRefundMode(const Json& req);

  // For the HTML checkout page: amount/currency/status/return_url, or
  // nullopt.
  std::optional<Json> SessionSummary(const std::string& session_id);

  // Clears sessions, orders, tokens, agreements, counters and the clock
  // offset; keeps merchants.
  void Reset();

  // Webhooks produced since the last call.
  std::vector<WebhookEvent> TakeWebhookEvents();

  const std::map<std::string, int64_t>& creates_by_trans_id() const {
    return creates_by_trans_id_;
  }
  const std::map<std::string, int64_t>& charges_by_trans_id() const {
    return charges_by_trans_id_;
  }

 private:
  struct Card {
    std::string bin, last4, brand;
  };
  struct Session {
    std::string id, merchant_id, trans_id, payment_type, currency, session_mode,
        return_url, notify_url, capture_method, authorisation_type;
    int64_t amount = 0;
    absl::Time expire_time;
    bool store_payment_method = false;
    std::string token_usage, shopper_reference;
    std::string order_id;  // latest payment attempt, may be empty
    bool completed = false;
    absl::Time visible_at = absl::InfinitePast();  // real time
  };
  struct Order {
    std::string id, merchant_id, trans_id, session_id, status, payment_type,
        currency, capture_method, authorisation_type, error_code,
        error_description, token, agreement_id, shopper_reference, notify_url;
    int64_t amount = 0;
    std::optional<absl::Time> pay_finish_time;
    std::optional<Card> card;
    bool pending_3ds = false;
    // When set, a SUCCESS/AUTHORIZED outcome stores the card (first
    // recurring / card-on-file payment).
    bool store_card = false;
    std::string token_usage;
    absl::Time visible_at = absl::InfinitePast();  // real time
    // Balances (minor units). Refunds in REVIEWING hold their amount.
    int64_t authed = 0, captured = 0, voided = 0, refunded = 0, refund_held = 0;
  };
  struct RefundRecord {
    std::string id, merchant_id, refund_trans_id, order_id, currency, status,
        error_code, error_description, notify_url, reason;
    int64_t amount = 0;
  };
  struct Outcome {
    std::string status, error_code, error_description;
  };
  struct Agreement {
    std::string id, merchant_id, token, shopper_reference, token_usage;
    Card card;
    bool active = true;
  };
  struct TokenOverride {
    Outcome outcome;
    int remaining = 1;  // < 0: forever
  };

  std::string NextId(const char* prefix);
  Session* FindSessionFor(const std::string& merchant_id,
                          const std::string& session_id);
  std::string SessionStatus(const Session& s) const;
  Json SessionJson(const Session& s) const;
  Json OrderJson(const Order& o) const;
  // Moves `o` to `out`; stores the card, completes the session and emits
  // the webhook as appropriate.
  void ApplyOutcome(Order& o, const Outcome& out);
  Order& NewOrder();
  static Card CardFromNumber(const std::string& card_no);
  static Outcome OutcomeForTestCard(const std::string& card_no,
                                    const std::string& capture_method);
  bool TransIdTaken(const std::string& merchant_id,
                    const std::string& trans_id) const;
  ApiResponse DuplicateRefusal() const;
  std::optional<ApiResponse> Duplicate(const std::string& merchant_id,
                                       const std::string& trans_id,
                                       bool session) const;
  std::optional<ApiResponse> ReadSession(const Json& req, Session* s,
                                         std::optional<bool>* mit) const;
  std::optional<ApiResponse> ReadExpireTime(const std::string& expire,
                                            absl::Time* out) const;
  std::optional<ApiResponse> ResolveAgreement(
      const Merchant& merchant, InitiateRequest& r,
      const Agreement** agreement) const;
  Outcome AgreementOutcome(const Agreement& agreement,
                           const InitiateRequest& r);
  Order* FindOrderFor(const std::string& merchant_id,
                      const std::string& order_id);
  Json RefundJson(const RefundRecord& r) const;
  // Moves a refund to SUCCESS or FAILURE with the order's balances, status
  // and the REFUND.* webhook.
  void SettleRefund(RefundRecord& r, const Outcome& out);
  void EmitWebhook(const std::string& merchant_id, const std::string& url,
                   const std::string& object_id, const std::string& type,
                   Json body);
  static bool Visible(absl::Time visible_at) {
    return absl::Now() >= visible_at;
  }

  StoreOptions options_;
  std::vector<Merchant> merchants_;
  absl::Duration clock_offset_ = absl::ZeroDuration();
  uint64_t id_seq_ = 0;
  std::map<std::string, Session> sessions_;
  std::map<std::string, Order> orders_;
  std::map<std::string, Agreement> agreements_;
  std::map<std::string, std::string> agreement_by_token_;
  std::map<std::string, TokenOverride> token_overrides_;
  // (merchant_id, trans_id) -> session id / latest order id.
  std::map<std::pair<std::string, std::string>, std::string>
      session_by_trans_id_;
  std::map<std::pair<std::string, std::string>, std::string> order_by_trans_id_;
  std::map<std::string, int64_t> creates_by_trans_id_;
  std::map<std::string, int64_t> charges_by_trans_id_;
  std::vector<WebhookEvent> webhooks_;
  std::map<std::string, RefundRecord> refunds_;  // by refund_order_id
  // (merchant_id, refund_trans_id) -> refund_order_id.
  std::map<std::pair<std::string, std::string>, std::string>
      refund_by_trans_id_;
  bool refund_review_ = false;
};

// RFC 3339 in UTC with a "+00:00" offset, seconds precision.
std::string FormatRfc3339(absl::Time t);
// ISO-8601 with an offset: "+08:00", "+0800" or "Z"; fractional seconds ok.
std::optional<absl::Time> ParseIsoTime(const std::string& text);

}  // namespace payorch::sandbox

#endif  // PAYORCH_SANDBOX_STORE_H_
