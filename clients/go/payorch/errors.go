package payorch

import (
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDetails is a failed call's gRPC status with its google.rpc details
// decoded. payorch sends exactly one ErrorInfo (domain "payorch"); branch on
// Reason, never on Message.
type ErrorDetails struct {
	Code    codes.Code
	Message string
	// ErrorInfo: the reason (README, "Errors") and its metadata, e.g.
	// psp_ret_code for PSP_REJECTED. Empty when the call never reached
	// payorch (e.g. connection refused).
	Reason   string
	Domain   string
	Metadata map[string]string
	// RetryInfo: how long to wait before retrying; nil when absent.
	RetryDelay *time.Duration
	// BadRequest: every invalid field with its path, e.g. "payment.token".
	FieldViolations []FieldViolation
}

// FieldViolation is one google.rpc.BadRequest entry.
type FieldViolation struct {
	Field       string
	Description string
}

// Details decodes err's gRPC status and details; nil when err is not a gRPC
// status error.
func Details(err error) *ErrorDetails {
	st, ok := status.FromError(err)
	if !ok || st == nil || err == nil {
		return nil
	}
	d := &ErrorDetails{Code: st.Code(), Message: st.Message()}
	for _, detail := range st.Details() {
		switch v := detail.(type) {
		case *errdetails.ErrorInfo:
			d.Reason, d.Domain, d.Metadata = v.GetReason(), v.GetDomain(), v.GetMetadata()
		case *errdetails.RetryInfo:
			delay := v.GetRetryDelay().AsDuration()
			d.RetryDelay = &delay
		case *errdetails.BadRequest:
			for _, fv := range v.GetFieldViolations() {
				d.FieldViolations = append(d.FieldViolations,
					FieldViolation{Field: fv.GetField(), Description: fv.GetDescription()})
			}
		}
	}
	return d
}
