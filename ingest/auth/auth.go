// Package auth authenticates the sources that post events to ingest: per-source API
// tokens, stored as their SHA-256 only, and HMAC-signed requests with a timestamp for
// webhook sources. Credentials live in one file, read again when it changes, so that a
// token or secret is added, rotated or revoked without a restart.
//
// The credentials file has one credential per line, "<source> <scheme> <credential>
// [types=<type,...>] [teams=<team,...>]"; '#' starts a comment:
//
//	# source  scheme  credential                                                               scope
//	zendesk   token   sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae  types=survey_response,ticket
//	zendesk   token   sha256:fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9  types=survey_response,ticket
//	surveys   hmac    a-long-random-secret-shared-with-the-survey-tool                         types=survey_response
//	hr        token   sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  types=employee_pulse teams=alpha,bravo
//
// The scope says which event types the credential may send, and, with teams=, for
// which teams only (Scope); an event outside it is rejected, naming the field. With
// followups=<owner,...> (or followups=*) it may acknowledge and close those owners'
// follow-up cases; a line with followups= and no types= sends no events. Employee
// pulses need types=employee_pulse: give it to HR sources only. A line without types=
// (written before scopes existed) may send survey_response and ticket, never pulses,
// and is reported in the log. A source may have several credentials (two tokens while
// rotating). `cxlink token <source>` makes a random token and prints its line. An HMAC
// secret has to be kept as it is: keep the file readable by cxlink only.
//
// A request authenticates with "Authorization: Bearer <token>", or, for HMAC sources,
// with the headers
//
//	X-Cxlink-Source: surveys
//	X-Cxlink-Timestamp: 1795000000                  (Unix seconds)
//	X-Cxlink-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the secret>
//
// A signature whose timestamp is further than the tolerance from the server's clock is
// refused, so that a captured request cannot be replayed later; inside the tolerance a
// replay only resends events whose ids are already stored (they come back duplicates).
package auth

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Headers of a signed request.
const (
	HeaderSource    = "X-Cxlink-Source"
	HeaderTimestamp = "X-Cxlink-Timestamp"
	HeaderSignature = "X-Cxlink-Signature"
)

// Modes of CXLINK_AUTH.
const (
	ModeAuto     = "auto"     // required unless ingest listens on loopback only
	ModeRequired = "required" // always
	ModeOff      = "off"      // never: a trusted network in front of ingest
)

// Config of authentication. DefaultConfig holds the defaults.
type Config struct {
	// Mode: auto requires credentials unless ingest listens on a loopback address only,
	// where it serves the local demo and tests.
	Mode string `env:"CXLINK_AUTH"`
	// File holds the credentials; it is read again when it changes.
	File string `env:"CXLINK_AUTH_FILE"`
	// Tolerance is how far a signed request's timestamp may be from the server's clock.
	Tolerance time.Duration `env:"CXLINK_AUTH_SIGNATURE_TOLERANCE"`
}

// DefaultConfig is the configuration when nothing is set.
func DefaultConfig() Config {
	// Five minutes: the usual replay window of signed webhooks, wide enough for the
	// clocks of senders that keep time.
	return Config{Mode: ModeAuto, Tolerance: 5 * time.Minute}
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	switch c.Mode {
	case ModeAuto, ModeRequired, ModeOff:
	default:
		errs = append(errs, fmt.Errorf("CXLINK_AUTH: %q is not auto, required or off", c.Mode))
	}
	if c.Mode == ModeRequired && c.File == "" {
		errs = append(errs, errors.New("CXLINK_AUTH_FILE: required when CXLINK_AUTH=required"))
	}
	if c.Tolerance < time.Second || c.Tolerance > time.Hour {
		errs = append(errs, fmt.Errorf("CXLINK_AUTH_SIGNATURE_TOLERANCE: %s is not between 1s and 1h", c.Tolerance))
	}
	return errors.Join(errs...)
}

// Enabled says whether ingest listening on addr authenticates requests, or why it must
// not start.
func (c Config) Enabled(addr string) (bool, error) {
	switch {
	case c.Mode == ModeOff:
		return false, nil
	case c.File != "":
		return true, nil
	case c.Mode == ModeAuto && loopback(addr):
		return false, nil
	}
	return false, fmt.Errorf("ingest on %s would accept events from anyone: set CXLINK_AUTH_FILE "+
		"(see `cxlink token`), or CXLINK_AUTH=off if a trusted proxy authenticates", addr)
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Options of an Authenticator.
type Options struct {
	// Reserved are source names the credentials file may not use, each with the reason:
	// the namespaces of the vendor webhooks, whose event ids another credential could
	// otherwise pre-empt.
	Reserved   map[string]string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Authenticator checks requests against the credentials file. Safe for concurrent use.
type Authenticator struct {
	cfg     Config
	opts    Options
	results *prometheus.CounterVec
	reloads *prometheus.CounterVec
	failing prometheus.Gauge

	mu      sync.Mutex
	creds   *credentials
	stamp   fileStamp
	checked time.Time
	// stale is why the file on disk is not in force (nil: it is).
	stale error
}

// reloadEvery is how often at most the file is looked at again.
const reloadEvery = 2 * time.Second

// New reads the credentials file; it fails when the file is missing or invalid.
func New(cfg Config, opts Options) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.File == "" {
		return nil, errors.New("CXLINK_AUTH_FILE is not set")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f := promauto.With(opts.Registerer)
	a := &Authenticator{cfg: cfg, opts: opts,
		results: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_auth_requests_total",
			Help: "Event requests by authentication result: token, signature (accepted), missing, bad_token, bad_signature, stale_timestamp.",
		}, []string{"result"}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_auth_reloads_total",
			Help: "Reads of the credentials file by result (ok, error: the previous credentials stay in force).",
		}, []string{"result"}),
		failing: f.NewGauge(prometheus.GaugeOpts{
			Name: "cxlink_auth_reload_failing",
			Help: "1 while the credentials file on disk could not be read or is invalid, so that the previous credentials (and any token it revokes) stay in force; 0 when the file in force is the one on disk.",
		}),
	}
	for _, r := range []string{"token", "signature", "missing", "bad_token", "bad_signature", "stale_timestamp"} {
		a.results.WithLabelValues(r)
	}
	stamp, creds, err := load(cfg.File, opts.Reserved)
	if err != nil {
		return nil, err
	}
	a.creds, a.stamp, a.checked = creds, stamp, opts.Now()
	a.reloads.WithLabelValues("ok").Inc()
	a.reloads.WithLabelValues("error")
	opts.Logger.Info("credentials loaded", "file", cfg.File, "sources", creds.sources(), "tokens", len(creds.tokens), "hmac_secrets", creds.secretCount())
	creds.warnLegacy(opts.Logger, cfg.File)
	return a, nil
}

// current returns the credentials, reading the file again when it changed.
func (a *Authenticator) current() *credentials {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.opts.Now()
	if now.Sub(a.checked) < reloadEvery {
		return a.creds
	}
	a.checked = now
	st, err := stampOf(a.cfg.File)
	if err == nil && st == a.stamp {
		return a.creds
	}
	stamp, creds, err := load(a.cfg.File, a.opts.Reserved)
	if err != nil {
		a.reloads.WithLabelValues("error").Inc()
		a.failing.Set(1)
		a.stale = err
		a.opts.Logger.Error("credentials file not reloaded; the previous credentials stay in force (alert CXLinkCredentialsReloadFailing)", "file", a.cfg.File, "err", err)
		a.stamp = st // do not retry an unchanged broken file every time
		return a.creds
	}
	a.creds, a.stamp, a.stale = creds, stamp, nil
	a.failing.Set(0)
	a.reloads.WithLabelValues("ok").Inc()
	a.opts.Logger.Info("credentials reloaded", "file", a.cfg.File, "sources", creds.sources(), "tokens", len(creds.tokens), "hmac_secrets", creds.secretCount())
	creds.warnLegacy(a.opts.Logger, a.cfg.File)
	return creds
}

// Run reads the file again whenever it changes until ctx ends, so that a reload that
// fails is noticed (cxlink_auth_reload_failing) even while no request comes.
func (a *Authenticator) Run(ctx context.Context) error {
	t := time.NewTicker(reloadEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			a.current()
		}
	}
}

// Stale says why the credentials file on disk is not in force, nil when it is.
func (a *Authenticator) Stale() error {
	a.current()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stale
}

// Check authenticates a request by its headers alone, before anything of its body is
// read. A token is decided at once: its source and scope, or an *Error (401). A signed
// request returns a *Signed, whose body decides (Verify): it names the source it claims
// to be, for the caller's budget of requests being read.
func (a *Authenticator) Check(h http.Header) (source string, scope Scope, signed *Signed, e *Error) {
	creds := a.current()
	if sig := h.Get(HeaderSignature); sig != "" {
		signed, e := a.signed(h, creds, sig)
		return "", Scope{}, signed, e
	}
	authz := h.Get("Authorization")
	if authz == "" {
		a.results.WithLabelValues("missing").Inc()
		return "", Scope{}, nil, unauthorized("credentials required: send Authorization: Bearer <token>, or a signed request (" + HeaderSignature + ")")
	}
	scheme, token, ok := strings.Cut(authz, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		a.results.WithLabelValues("bad_token").Inc()
		return "", Scope{}, nil, unauthorized("the Authorization header must be \"Bearer <token>\"")
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	cred, ok := creds.tokens[sum]
	if !ok {
		a.results.WithLabelValues("bad_token").Inc()
		return "", Scope{}, nil, unauthorized("the token is not valid (revoked, mistyped, or of another installation)")
	}
	a.results.WithLabelValues("token").Inc()
	return cred.source, cred.scope, nil, nil
}

// Signed is a request whose credentials are an HMAC of its body: its headers were
// checked (a known signing source, a fresh timestamp, a well-formed signature), its body
// not yet.
type Signed struct {
	a       *Authenticator
	source  string
	ts      int64
	want    []byte
	secrets []secretCred
}

// Source is the source the request claims to be.
func (s *Signed) Source() string { return s.source }

// Verify checks the signature against the body and returns the source and scope of the
// secret that made it, or an *Error (401).
func (s *Signed) Verify(body []byte) (string, Scope, *Error) {
	for _, secret := range s.secrets {
		if hmac.Equal(mac(secret.key, s.ts, body), s.want) {
			s.a.results.WithLabelValues("signature").Inc()
			return s.source, secret.scope, nil
		}
	}
	s.a.results.WithLabelValues("bad_signature").Inc()
	return "", Scope{}, unauthorized("the signature does not match the body and timestamp")
}

func (a *Authenticator) signed(h http.Header, creds *credentials, sig string) (*Signed, *Error) {
	source := h.Get(HeaderSource)
	secrets := creds.secrets[source]
	if source == "" || len(secrets) == 0 {
		a.results.WithLabelValues("bad_signature").Inc()
		return nil, unauthorized(HeaderSource + " must name a source that signs its requests")
	}
	ts, err := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		a.results.WithLabelValues("bad_signature").Inc()
		return nil, unauthorized(HeaderTimestamp + " must be the time of signing in Unix seconds")
	}
	if skew := a.opts.Now().Sub(time.Unix(ts, 0)); skew > a.cfg.Tolerance || skew < -a.cfg.Tolerance {
		a.results.WithLabelValues("stale_timestamp").Inc()
		return nil, unauthorized(fmt.Sprintf("the signature's timestamp is %s from the server's clock, more than the %s allowed: sign each request when sending it",
			skew.Round(time.Second), a.cfg.Tolerance))
	}
	want, err := hex.DecodeString(strings.TrimPrefix(sig, "sha256="))
	if err != nil || !strings.HasPrefix(sig, "sha256=") || len(want) != sha256.Size {
		a.results.WithLabelValues("bad_signature").Inc()
		return nil, unauthorized(HeaderSignature + " must be sha256=<64 hex digits>")
	}
	return &Signed{a: a, source: source, ts: ts, want: want, secrets: secrets}, nil
}

// Sign returns the X-Cxlink-Signature of body sent at ts (Unix seconds) with secret.
func Sign(secret []byte, ts int64, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts int64, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Error is a refused request: its status code and what to tell the client.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return e.Message }

func unauthorized(msg string) *Error { return &Error{Code: http.StatusUnauthorized, Message: msg} }

// NewToken returns a random API token and the credentials-file line of its hash with
// scope (its fields "types=…" and "teams=…"; none: survey_response and ticket).
func NewToken(source string, scope ...string) (token, line string, err error) {
	if err := checkSource(source); err != nil {
		return "", "", err
	}
	s, _, err := parseScope(scope)
	if err != nil {
		return "", "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	token = "cxl_" + hex.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	return token, fmt.Sprintf("%s token sha256:%s %s", source, hex.EncodeToString(sum[:]), s), nil
}

// credentials is one reading of the file.
type credentials struct {
	tokens  map[[sha256.Size]byte]tokenCred // token hash → its source and scope
	secrets map[string][]secretCred         // source → HMAC secrets
	// legacy lists the lines without types=, for the log.
	legacy []int
}

type tokenCred struct {
	source string
	scope  Scope
}

type secretCred struct {
	key   []byte
	scope Scope
}

func (c *credentials) sources() int {
	seen := map[string]bool{}
	for _, s := range c.tokens {
		seen[s.source] = true
	}
	for s := range c.secrets {
		seen[s] = true
	}
	return len(seen)
}

// warnLegacy reports the lines that name no scope, and what they may send.
func (c *credentials) warnLegacy(logger *slog.Logger, file string) {
	if len(c.legacy) == 0 {
		return
	}
	logger.Warn("credentials without types= may send survey_response and ticket events only, never employee pulses; "+
		"add types=… to each line (README, Authentication)", "file", file, "lines", fmt.Sprint(c.legacy))
}

func (c *credentials) secretCount() int {
	n := 0
	for _, s := range c.secrets {
		n += len(s)
	}
	return n
}

// minSecret is the shortest HMAC secret accepted.
const minSecret = 16

func checkSource(s string) error {
	if s == "" || len(s) > 128 || strings.ContainsAny(s, " \t\r\n") {
		return fmt.Errorf("source %q must be 1–128 bytes without white space", s)
	}
	return nil
}

// parse reads a credentials file. Errors name the line, never a credential.
func parse(r io.Reader, reserved map[string]string) (*credentials, error) {
	c := &credentials{tokens: map[[sha256.Size]byte]tokenCred{}, secrets: map[string][]secretCred{}}
	sc := bufio.NewScanner(r)
	var errs []error
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 || len(f) > 6 {
			errs = append(errs, fmt.Errorf("line %d: want \"<source> <scheme> <credential> [types=…] [teams=…] [followups=…]\", got %d fields", n, len(f)))
			continue
		}
		if err := checkSource(f[0]); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		if why, ok := reserved[f[0]]; ok {
			errs = append(errs, fmt.Errorf("line %d: source %s is reserved (%s): name this credential otherwise, e.g. %s-relay", n, f[0], why, f[0]))
			continue
		}
		scope, legacy, err := parseScope(f[3:])
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		if legacy {
			c.legacy = append(c.legacy, n)
		}
		switch f[1] {
		case "token":
			h, err := hex.DecodeString(strings.TrimPrefix(f[2], "sha256:"))
			if !strings.HasPrefix(f[2], "sha256:") || err != nil || len(h) != sha256.Size {
				errs = append(errs, fmt.Errorf("line %d: a token credential is sha256:<64 hex digits> (the hash, never the token itself)", n))
				continue
			}
			var sum [sha256.Size]byte
			copy(sum[:], h)
			if other, ok := c.tokens[sum]; ok && other.source != f[0] {
				errs = append(errs, fmt.Errorf("line %d: the same token is already given to source %s", n, other.source))
				continue
			}
			c.tokens[sum] = tokenCred{f[0], scope}
		case "hmac":
			if len(f[2]) < minSecret {
				errs = append(errs, fmt.Errorf("line %d: an HMAC secret needs at least %d bytes", n, minSecret))
				continue
			}
			c.secrets[f[0]] = append(c.secrets[f[0]], secretCred{[]byte(f[2]), scope})
		default:
			errs = append(errs, fmt.Errorf("line %d: scheme %q is not token or hmac", n, f[1]))
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	if len(c.tokens)+len(c.secrets) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("no credentials: every request would be refused"))
	}
	return c, errors.Join(errs...)
}

// fileStamp tells whether a file changed.
type fileStamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

func load(path string, reserved map[string]string) (fileStamp, *credentials, error) {
	st, err := stampOf(path)
	if err != nil {
		return st, nil, fmt.Errorf("credentials file: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return st, nil, fmt.Errorf("credentials file: %w", err)
	}
	defer f.Close()
	c, err := parse(f, reserved)
	if err != nil {
		return st, nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	return st, c, nil
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size(), ino: inode(fi)}, nil
}
