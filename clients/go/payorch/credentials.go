package payorch

import "google.golang.org/grpc"

// Security describes how the channel authenticates payorch (and itself).
// The zero value is plaintext, for loopback and for a service mesh that
// terminates TLS in a sidecar.
//
// mTLS (CA bundle, client certificate and key) is added here, as fields of
// this struct, and built in transportCredentials: nothing else in the client
// creates channel credentials.
type Security struct{}

// transportCredentials is the one place where the channel's credentials are
// made.
func transportCredentials(Security) (grpc.DialOption, error) {
	// grpc-go 1.33 (Debian 12) has no credentials/insecure package.
	return grpc.WithInsecure(), nil
}
