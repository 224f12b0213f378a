// Package payorch is a small Go client for payorch's PaymentOrchestrator API
// (proto/payorch/v1). It adds what every caller needs on top of the generated
// stubs:
//
//   - a deadline on every call (Options.CallTimeout per attempt, bounded by the
//     caller's context);
//   - retries of the retryable reasons with the same request, so the same
//     trans_id, honouring the server's google.rpc.RetryInfo;
//   - the google.rpc error details decoded (Details): ErrorInfo reason and
//     metadata, RetryInfo, BadRequest field violations.
//
// The stubs are generated from proto/ at build time (clients/go/build.sh).
package payorch

import (
	"context"
	"math/rand"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	pb "payorch.example/gen/payorch/v1"
)

// Options configures a Client. Zero values take the defaults below.
type Options struct {
	// CallTimeout is the deadline of each attempt (default 10 s). A shorter
	// deadline on the caller's context wins.
	CallTimeout time.Duration
	// MaxAttempts bounds the attempts of one call, the first included
	// (default 5).
	MaxAttempts int
	// BaseBackoff is the first retry delay when the server sends no RetryInfo
	// (default 200 ms); it doubles per attempt, with jitter.
	BaseBackoff time.Duration
	// OnRetry, if set, is called before each retry (for logs or metrics).
	OnRetry func(method string, attempt int, details *ErrorDetails, delay time.Duration)
	// Security configures the channel's transport credentials.
	Security Security
}

func (o Options) withDefaults() Options {
	if o.CallTimeout <= 0 {
		o.CallTimeout = 10 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = 200 * time.Millisecond
	}
	return o
}

// Client calls one payorch deployment. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
	stub pb.PaymentOrchestratorClient
	opts Options
}

// Dial creates a Client for target ("host:port", or any gRPC target such as
// "dns:///payorch.payments:50051"). The connection is made lazily.
func Dial(target string, opts Options) (*Client, error) {
	creds, err := transportCredentials(opts.Security)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.Dial(target, creds)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, stub: pb.NewPaymentOrchestratorClient(conn), opts: opts.withDefaults()}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// CreateCheckout creates a PayKKa checkout session. Idempotent on
// (merchant_id, trans_id): retries resend the same request.
func (c *Client) CreateCheckout(ctx context.Context, req *pb.CreateCheckoutRequest) (*pb.CreateCheckoutResponse, error) {
	return invoke(ctx, c, "CreateCheckout", req, c.stub.CreateCheckout)
}

// ChargeRecurring charges a stored card (merchant-initiated). A decline is a
// response whose order has status FAILURE, not an error.
func (c *Client) ChargeRecurring(ctx context.Context, req *pb.ChargeRecurringRequest) (*pb.ChargeRecurringResponse, error) {
	return invoke(ctx, c, "ChargeRecurring", req, c.stub.ChargeRecurring)
}

// GetOrder reads an order. NOT_FOUND/ORDER_NOT_FOUND means "not paid yet".
func (c *Client) GetOrder(ctx context.Context, req *pb.GetOrderRequest) (*pb.GetOrderResponse, error) {
	return invoke(ctx, c, "GetOrder", req, c.stub.GetOrder)
}

// GetSessionStatus reads a checkout session.
func (c *Client) GetSessionStatus(ctx context.Context, req *pb.GetSessionStatusRequest) (*pb.GetSessionStatusResponse, error) {
	return invoke(ctx, c, "GetSessionStatus", req, c.stub.GetSessionStatus)
}

type unaryRPC[Req, Resp any] func(context.Context, Req, ...grpc.CallOption) (Resp, error)

// invoke runs rpc with a per-attempt deadline and retries the retryable
// failures with the same request until MaxAttempts or ctx ends.
func invoke[Req, Resp any](ctx context.Context, c *Client, method string, req Req, rpc unaryRPC[Req, Resp]) (Resp, error) {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, c.opts.CallTimeout)
		resp, err := rpc(actx, req)
		cancel()
		if err == nil {
			return resp, nil
		}
		details := Details(err)
		if attempt >= c.opts.MaxAttempts || !retryable(ctx, details) {
			return resp, err
		}
		delay := c.backoff(attempt, details)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < delay {
			return resp, err // no time left for another attempt
		}
		if c.opts.OnRetry != nil {
			c.opts.OnRetry(method, attempt, details, delay)
		}
		select {
		case <-ctx.Done():
			return resp, err
		case <-time.After(delay):
		}
	}
}

// RetryableReasons are the ErrorInfo reasons after which the same request
// (same trans_id, same content) may be sent again.
var RetryableReasons = map[string]bool{
	"REQUEST_IN_PROGRESS":           true,
	"PSP_OUTCOME_UNKNOWN":           true,
	"PSP_UNAVAILABLE":               true,
	"PSP_RATE_LIMITED":              true,
	"PSP_BAD_RESPONSE":              true,
	"IDEMPOTENCY_STORE_UNAVAILABLE": true,
}

func retryable(ctx context.Context, d *ErrorDetails) bool {
	if d == nil || ctx.Err() != nil {
		return false
	}
	if d.Reason != "" {
		return RetryableReasons[d.Reason]
	}
	// No ErrorInfo: the call did not reach payorch (connection refused or
	// reset, or the attempt's own deadline). Every payorch call is safe to
	// resend unchanged.
	return d.Code == codes.Unavailable || d.Code == codes.DeadlineExceeded
}

// backoff is at least the server's RetryInfo delay (up to 1.5 times it),
// else exponential from BaseBackoff (0.5 to 1 times it): the jitter keeps
// callers from retrying in step.
func (c *Client) backoff(attempt int, d *ErrorDetails) time.Duration {
	if d.RetryDelay != nil {
		return time.Duration(float64(*d.RetryDelay) * (1 + rand.Float64()/2))
	}
	delay := c.opts.BaseBackoff << (attempt - 1)
	return time.Duration(float64(delay) * (0.5 + rand.Float64()/2))
}
