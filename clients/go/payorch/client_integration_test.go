package payorch_test

// Integration test against a running stack (redis-server, paykka-sandbox,
// payorchd). tests/integration/client_libraries_test.cc starts one and runs
// this test binary with its addresses in the environment:
// PAYORCH_TARGET, PAYORCH_SANDBOX_URL, PAYORCH_MERCHANT_ID, PAYORCH_CLIENT_KEY,
// and payorchd's mTLS material: PAYORCH_CA, PAYORCH_CERT, PAYORCH_KEY (a caller
// allowed everything) and PAYORCH_LIMITED_CERT, PAYORCH_LIMITED_KEY (a caller
// allowed CreateCheckout, GetSessionStatus and GetOrder for the merchant only).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"payorch.example/client/payorch"
	pb "payorch.example/gen/payorch/v1"
)

type stack struct {
	target, sandbox, merchant, clientKey string
}

func newStack(t *testing.T) stack {
	s := stack{os.Getenv("PAYORCH_TARGET"), os.Getenv("PAYORCH_SANDBOX_URL"),
		os.Getenv("PAYORCH_MERCHANT_ID"), os.Getenv("PAYORCH_CLIENT_KEY")}
	if s.target == "" || s.sandbox == "" || s.merchant == "" {
		t.Skip("no stack: set PAYORCH_TARGET, PAYORCH_SANDBOX_URL, PAYORCH_MERCHANT_ID")
	}
	return s
}

// control calls the sandbox's control API; the decoded JSON answer.
func (s stack) control(t *testing.T, method, path string, body any) map[string]any {
	t.Helper()
	var in bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&in).Encode(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, s.sandbox+path, &in)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("sandbox %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("sandbox %s %s: HTTP %d %v", method, path, resp.StatusCode, out)
	}
	return out
}

func (s stack) pay(t *testing.T, sessionID string) {
	s.control(t, "POST", "/sandbox/sessions/"+sessionID+"/pay", map[string]string{"outcome": "SUCCESS"})
}

func transID(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()) }

func checkout(s stack, trans string) *pb.CreateCheckoutRequest {
	return &pb.CreateCheckoutRequest{
		MerchantId: s.merchant, TransId: trans, PaymentType: pb.PaymentType_PAYMENT_TYPE_PURCHASE,
		SessionMode: pb.SessionMode_SESSION_MODE_DROP_IN, Amount: 1999, Currency: "USD",
		ReturnUrl:  "https://shop.example/return",
		ExpireTime: timestamppb.New(time.Now().Add(30 * time.Minute)),
	}
}

// dial connects with opts; with the zero Security, as the caller in
// PAYORCH_CA/PAYORCH_CERT/PAYORCH_KEY.
func dial(t *testing.T, s stack, opts payorch.Options) *payorch.Client {
	if opts.Security == (payorch.Security{}) {
		opts.Security = payorch.SecurityFromEnv()
	}
	c, err := payorch.Dial(s.target, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestCheckoutPayGetOrderAndReplay(t *testing.T) {
	s := newStack(t)
	ctx, c := testContext(t), dial(t, s, payorch.Options{})
	req := checkout(s, transID("go"))
	created, err := c.CreateCheckout(ctx, req)
	if err != nil {
		t.Fatalf("CreateCheckout: %v %+v", err, payorch.Details(err))
	}
	if !strings.HasPrefix(created.SessionId, "CS") || created.ClientKey != s.clientKey {
		t.Fatalf("unexpected response %v", created)
	}
	s.pay(t, created.SessionId)

	got, err := c.GetOrder(ctx, &pb.GetOrderRequest{MerchantId: s.merchant,
		Lookup: &pb.GetOrderRequest_TransId{TransId: req.TransId}})
	if err != nil {
		t.Fatalf("GetOrder: %v", err)
	}
	if o := got.Order; o.Status != pb.OrderStatus_ORDER_STATUS_SUCCESS || o.Amount != 1999 ||
		o.SessionId != created.SessionId {
		t.Fatalf("order %v", o)
	}

	replay, err := c.CreateCheckout(ctx, req)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if replay.SessionId != created.SessionId {
		t.Fatalf("replay gave session %q, first call %q", replay.SessionId, created.SessionId)
	}
}

func TestInvalidRequestReportsEveryFieldViolation(t *testing.T) {
	s := newStack(t)
	retries := 0
	c := dial(t, s, payorch.Options{OnRetry: func(string, int, *payorch.ErrorDetails, time.Duration) { retries++ }})
	req := checkout(s, transID("gobad"))
	req.Amount, req.Currency = 0, "EURO"
	_, err := c.CreateCheckout(testContext(t), req)
	d := payorch.Details(err)
	if d == nil || d.Code != codes.InvalidArgument || d.Reason != "INVALID_FIELD" || d.Domain != "payorch" {
		t.Fatalf("want INVALID_ARGUMENT/INVALID_FIELD, got %v %+v", err, d)
	}
	fields := map[string]bool{}
	for _, v := range d.FieldViolations {
		fields[v.Field] = v.Description != ""
	}
	if !fields["amount"] || !fields["currency"] {
		t.Fatalf("violations %+v lack amount or currency", d.FieldViolations)
	}
	if retries != 0 {
		t.Fatalf("an invalid request was retried %d times", retries)
	}
}

func TestChargeRecurringAfterAFirstRecurringPayment(t *testing.T) {
	s := newStack(t)
	ctx, c := testContext(t), dial(t, s, payorch.Options{})
	first := checkout(s, transID("gorec"))
	first.PaymentType = pb.PaymentType_PAYMENT_TYPE_RECURRING
	first.Payment = &pb.PaymentOptions{StorePaymentMethod: true,
		TokenUsage: pb.TokenUsage_TOKEN_USAGE_SUBSCRIPTION, ShopperReference: "shopper-go"}
	created, err := c.CreateCheckout(ctx, first)
	if err != nil {
		t.Fatalf("CreateCheckout: %v", err)
	}
	s.pay(t, created.SessionId)
	paid, err := c.GetOrder(ctx, &pb.GetOrderRequest{MerchantId: s.merchant,
		Lookup: &pb.GetOrderRequest_SessionId{SessionId: created.SessionId}})
	if err != nil || paid.Order.Token == "" || paid.Order.RecurringAgreementId == "" {
		t.Fatalf("first payment: %v %v", err, paid)
	}

	charge := &pb.ChargeRecurringRequest{MerchantId: s.merchant, TransId: transID("gocharge"),
		Amount: 990, Currency: "USD", RecurringAgreementId: paid.Order.RecurringAgreementId,
		Payment: &pb.PaymentOptions{Token: paid.Order.Token, ShopperReference: "shopper-go"}}
	charged, err := c.ChargeRecurring(ctx, charge)
	if err != nil {
		t.Fatalf("ChargeRecurring: %v %+v", err, payorch.Details(err))
	}
	if charged.Order.Status != pb.OrderStatus_ORDER_STATUS_SUCCESS || charged.Order.Amount != 990 {
		t.Fatalf("charge %v", charged.Order)
	}
	again, err := c.ChargeRecurring(ctx, charge)
	if err != nil || again.Order.OrderId != charged.Order.OrderId {
		t.Fatalf("replayed charge: %v %v, first order %s", err, again, charged.Order.OrderId)
	}

	// The same order and charge as the limited caller, identified by its own
	// client certificate: no stored-card fields, and ChargeRecurring refused.
	limited := dial(t, s, payorch.Options{MaxAttempts: 1, Security: payorch.Security{
		CAFile: os.Getenv("PAYORCH_CA"), CertFile: os.Getenv("PAYORCH_LIMITED_CERT"),
		KeyFile: os.Getenv("PAYORCH_LIMITED_KEY")}})
	seen, err := limited.GetOrder(ctx, &pb.GetOrderRequest{MerchantId: s.merchant,
		Lookup: &pb.GetOrderRequest_SessionId{SessionId: created.SessionId}})
	if err != nil || seen.Order.Status != pb.OrderStatus_ORDER_STATUS_SUCCESS || seen.Order.Token != "" ||
		seen.Order.RecurringAgreementId != "" {
		t.Fatalf("GetOrder as the limited caller: %v %v", err, seen)
	}
	charge.TransId = transID("gocharge-denied")
	_, err = limited.ChargeRecurring(ctx, charge)
	if d := payorch.Details(err); d == nil || d.Code != codes.PermissionDenied || d.Reason != "CALLER_NOT_AUTHORIZED" {
		t.Fatalf("ChargeRecurring as the limited caller: %v %+v", err, d)
	}
}

// payorchd requires a client certificate: a plaintext channel, or the zero
// Security, never gets a call through.
func TestCallerWithoutCertificateIsRefused(t *testing.T) {
	s := newStack(t)
	if _, err := payorch.Dial(s.target, payorch.Options{}); err == nil {
		t.Fatal("Dial with the zero Security made a channel")
	}
	c := dial(t, s, payorch.Options{MaxAttempts: 1, CallTimeout: 5 * time.Second,
		Security: payorch.Security{Plaintext: true}})
	_, err := c.GetOrder(testContext(t), &pb.GetOrderRequest{MerchantId: s.merchant,
		Lookup: &pb.GetOrderRequest_TransId{TransId: transID("goplain")}})
	if d := payorch.Details(err); d == nil || d.Code != codes.Unavailable {
		t.Fatalf("plaintext call to the mTLS port: %v %+v", err, d)
	}
}

// PayKKa fails (503) until the first retry: the client retries with the same
// trans_id and payorch creates exactly one session.
func TestRetriesTheSameTransIDAfterARetryableFailure(t *testing.T) {
	s := newStack(t)
	s.control(t, "PUT", "/sandbox/faults", map[string]any{"rules": []map[string]any{{
		"endpoint": "/v3/payment/acq/session", "http_status": 503, "error_rate": 1.0}}})
	t.Cleanup(func() { s.control(t, "DELETE", "/sandbox/faults", nil) })
	var seen []*payorch.ErrorDetails
	c := dial(t, s, payorch.Options{OnRetry: func(_ string, _ int, d *payorch.ErrorDetails, _ time.Duration) {
		seen = append(seen, d)
		s.control(t, "DELETE", "/sandbox/faults", nil)
	}})
	req := checkout(s, transID("goretry"))
	created, err := c.CreateCheckout(testContext(t), req)
	if err != nil {
		t.Fatalf("CreateCheckout: %v %+v", err, payorch.Details(err))
	}
	if len(seen) != 1 || seen[0].Code != codes.Unavailable || !payorch.RetryableReasons[seen[0].Reason] {
		t.Fatalf("want one retry after UNAVAILABLE with a retryable reason, saw %+v", seen)
	}
	counters := s.control(t, "GET", "/sandbox/counters", nil)
	creates, _ := counters["creates_by_trans_id"].(map[string]any)
	if creates[req.TransId] != float64(1) || created.SessionId == "" {
		t.Fatalf("sessions created for %s: %v", req.TransId, creates[req.TransId])
	}
}
