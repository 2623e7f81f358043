package adapters

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"net/http"
	"strings"
)

// Secret is a signing key or shared secret from the configuration. It prints as
// "[redacted]" however it is formatted, so that logging a configuration never shows it.
type Secret string

const redacted = "[redacted]"

// String hides the secret.
func (Secret) String() string { return redacted }

// GoString hides the secret from %#v.
func (Secret) GoString() string { return redacted }

// MarshalText hides the secret from encoders.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Set reports whether a secret is configured.
func (s Secret) Set() bool { return s != "" }

// HMACSHA256 is the HMAC-SHA256 of the concatenated parts under key.
func HMACSHA256(key Secret, parts ...[]byte) []byte { return mac(sha256.New, key, parts...) }

// HMACSHA1 is the HMAC-SHA1 of the concatenated parts under key.
func HMACSHA1(key Secret, parts ...[]byte) []byte { return mac(sha1.New, key, parts...) }

func mac(h func() hash.Hash, key Secret, parts ...[]byte) []byte {
	m := hmac.New(h, []byte(key))
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// EqualBase64 compares a base64 signature from a header with the expected MAC in
// constant time.
func EqualBase64(header string, want []byte) bool {
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(header))
	return err == nil && hmac.Equal(got, want)
}

// VerifyHexSignature checks the hex signature in header name of h, optionally prefixed
// (e.g. "sha1="), against the expected MAC in constant time; a missing or wrong one is
// an Unauthorized error naming the header.
func VerifyHexSignature(h http.Header, name, prefix string, want []byte) error {
	sig := strings.TrimSpace(h.Get(name))
	if sig == "" {
		return Unauthorized("missing " + name)
	}
	got, err := hex.DecodeString(strings.TrimPrefix(sig, prefix))
	if err != nil || !hmac.Equal(got, want) {
		return Unauthorized(name + " does not match the body")
	}
	return nil
}

// EqualSecret compares a shared secret sent by the caller with the configured one in
// constant time.
func EqualSecret(got string, want Secret) bool {
	return want.Set() && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
