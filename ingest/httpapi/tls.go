package httpapi

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// TLSConfig is the HTTPS configuration of CXLINK_TLS_CERT_FILE and CXLINK_TLS_KEY_FILE,
// or nil when they are not set. The pair is read now, and again when either file
// changes (checked at most every few seconds, on a new connection), so that a renewed
// certificate is served without a restart.
func (c Config) TLSConfig() (*tls.Config, error) {
	if c.TLSCertFile == "" {
		return nil, nil
	}
	r := &certReloader{certFile: c.TLSCertFile, keyFile: c.TLSKeyFile, now: time.Now}
	if err := r.load(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.get,
		NextProtos:     []string{"h2", "http/1.1"},
	}, nil
}

type certReloader struct {
	certFile, keyFile string
	now               func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]time.Time
	checked time.Time
}

func (r *certReloader) stamps() ([2]time.Time, error) {
	var out [2]time.Time
	for i, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return out, err
		}
		out[i] = fi.ModTime()
	}
	return out, nil
}

func (r *certReloader) load() error {
	stamp, err := r.stamps()
	if err != nil {
		return fmt.Errorf("CXLINK_TLS_CERT_FILE/CXLINK_TLS_KEY_FILE: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("CXLINK_TLS_CERT_FILE/CXLINK_TLS_KEY_FILE: %w", err)
	}
	r.mu.Lock()
	r.cert, r.stamp, r.checked = &cert, stamp, r.now()
	r.mu.Unlock()
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	cert, due := r.cert, r.now().Sub(r.checked) > 5*time.Second
	if due {
		r.checked = r.now()
	}
	stamp := r.stamp
	r.mu.Unlock()
	if due {
		if st, err := r.stamps(); err == nil && st != stamp {
			// A half-written pair fails to load: keep serving the old one until it
			// loads.
			_ = r.load()
			r.mu.Lock()
			cert = r.cert
			r.mu.Unlock()
		}
	}
	return cert, nil
}
