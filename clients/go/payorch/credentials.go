package payorch

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Security describes how the channel authenticates payorch and itself.
// payorchd requires mTLS: set CAFile, CertFile and KeyFile (the certificate
// issued to this caller, whose identity the caller policy names). Plaintext
// must be asked for explicitly, for a payorchd started with
// --insecure_plaintext (local development) or a mesh sidecar doing TLS; the
// zero value is an error, never a silent plaintext channel.
type Security struct {
	// CAFile is a PEM bundle of the CAs that sign payorchd's certificate.
	CAFile string
	// CertFile and KeyFile are this caller's client certificate (chain) and
	// private key, PEM.
	CertFile, KeyFile string
	// ServerName, if set, is the name checked in payorchd's certificate
	// instead of the target's host.
	ServerName string
	// Plaintext: no TLS and no client certificate. Excludes the fields above.
	Plaintext bool
}

// SecurityFromEnv reads PAYORCH_CA, PAYORCH_CERT and PAYORCH_KEY (the
// variables payorchctl and the Python client read), or PAYORCH_PLAINTEXT=1.
func SecurityFromEnv() Security {
	return Security{CAFile: os.Getenv("PAYORCH_CA"), CertFile: os.Getenv("PAYORCH_CERT"),
		KeyFile: os.Getenv("PAYORCH_KEY"), Plaintext: os.Getenv("PAYORCH_PLAINTEXT") == "1"}
}

// transportCredentials is the one place where the channel's credentials are
// made.
func transportCredentials(s Security) (grpc.DialOption, error) {
	files := s.CAFile != "" || s.CertFile != "" || s.KeyFile != ""
	if s.Plaintext {
		if files {
			return nil, errors.New("payorch: Security.Plaintext excludes CAFile, CertFile and KeyFile")
		}
		// grpc-go 1.33 (Debian 12) has no credentials/insecure package.
		return grpc.WithInsecure(), nil
	}
	if s.CAFile == "" || s.CertFile == "" || s.KeyFile == "" {
		return nil, errors.New("payorch: Security needs CAFile, CertFile and KeyFile (mTLS), or Plaintext")
	}
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, fmt.Errorf("payorch: CAFile: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("payorch: CAFile %s: no PEM certificate", s.CAFile)
	}
	pair, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("payorch: CertFile/KeyFile: %w", err)
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      roots,
		Certificates: []tls.Certificate{pair},
		ServerName:   s.ServerName,
	})), nil
}
