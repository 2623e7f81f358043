package app

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/cxlink/cxlink/ingest/broker"
)

// NATSAuth is how the roles authenticate to an external NATS (NATS_URL) and secure the
// connection. Secrets come from the environment or, better, from files (mounted
// secrets): a *_FILE variable names a file holding the value. At most one of creds,
// nkey, user/password and token is used. None of it is ever logged.
type NATSAuth struct {
	// CredsFile is a NATS decentralised-auth credentials file (JWT and nkey seed).
	CredsFile string `env:"NATS_CREDS_FILE"`
	// NkeyFile holds an nkey seed (SU…).
	NkeyFile     string `env:"NATS_NKEY_FILE"`
	User         string `env:"NATS_USER"`
	Password     string `env:"NATS_PASSWORD"`
	PasswordFile string `env:"NATS_PASSWORD_FILE"`
	Token        string `env:"NATS_TOKEN"`
	TokenFile    string `env:"NATS_TOKEN_FILE"`
	// TLSCAFile is the CA bundle that verifies the server (TLS is used when the URL is
	// tls:// or the server requires it); TLSCertFile and TLSKeyFile a client certificate.
	TLSCAFile   string `env:"NATS_TLS_CA_FILE"`
	TLSCertFile string `env:"NATS_TLS_CERT_FILE"`
	TLSKeyFile  string `env:"NATS_TLS_KEY_FILE"`
}

// Validate reports every problem of the NATS security settings.
func (c NATSAuth) Validate() error {
	var errs []error
	methods := []string{}
	if c.CredsFile != "" {
		methods = append(methods, "NATS_CREDS_FILE")
	}
	if c.NkeyFile != "" {
		methods = append(methods, "NATS_NKEY_FILE")
	}
	if c.User != "" || c.Password != "" || c.PasswordFile != "" {
		methods = append(methods, "NATS_USER")
	}
	if c.Token != "" || c.TokenFile != "" {
		methods = append(methods, "NATS_TOKEN")
	}
	if len(methods) > 1 {
		errs = append(errs, fmt.Errorf("NATS: choose one way to authenticate, not %s", strings.Join(methods, " and ")))
	}
	if c.Password != "" && c.PasswordFile != "" {
		errs = append(errs, errors.New("NATS_PASSWORD and NATS_PASSWORD_FILE: set one, not both"))
	}
	if c.Token != "" && c.TokenFile != "" {
		errs = append(errs, errors.New("NATS_TOKEN and NATS_TOKEN_FILE: set one, not both"))
	}
	if (c.Password != "" || c.PasswordFile != "") && c.User == "" {
		errs = append(errs, errors.New("NATS_USER: required with a NATS password"))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE: set both, or neither"))
	}
	return errors.Join(errs...)
}

// options turns the settings into connection options, reading the files now.
func (c NATSAuth) options() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NkeyFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NkeyFile)
		if err != nil {
			return nil, fmt.Errorf("NATS_NKEY_FILE: %w", err)
		}
		opts = append(opts, o)
	case c.User != "":
		pw, err := secret(c.Password, c.PasswordFile, "NATS_PASSWORD_FILE")
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserInfo(c.User, pw))
	case c.Token != "" || c.TokenFile != "":
		tok, err := secret(c.Token, c.TokenFile, "NATS_TOKEN_FILE")
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Token(tok))
	}
	if c.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(c.TLSCAFile))
	}
	if c.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(c.TLSCertFile, c.TLSKeyFile))
	}
	return opts, nil
}

// embedded gives the embedded server the user and password, or the token, so that it
// requires them of the clients of CXLINK_EMBEDDED_NATS_LISTEN.
func (c NATSAuth) embedded(cfg broker.Config) (broker.Config, error) {
	var err error
	switch {
	case c.User != "":
		cfg.User = c.User
		cfg.Password, err = secret(c.Password, c.PasswordFile, "NATS_PASSWORD_FILE")
	case c.Token != "" || c.TokenFile != "":
		cfg.Token, err = secret(c.Token, c.TokenFile, "NATS_TOKEN_FILE")
	}
	return cfg, err
}

// secret is value, or the content of file (without its final line break).
func secret(value, file, name string) (string, error) {
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

var urlPassword = regexp.MustCompile(`(//[^:/@]*:)[^@]*@`)

// redactURL hides a password written into a URL.
func redactURL(u string) string { return urlPassword.ReplaceAllString(u, "${1}xxxxx@") }
