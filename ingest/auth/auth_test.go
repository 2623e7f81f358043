package auth_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cxlink/cxlink/ingest/auth"
	"github.com/cxlink/cxlink/ingest/event"
)

// clock is a settable time for the tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// writeFile replaces path atomically, as a mounted secret is replaced.
func writeFile(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

const webhookSecret = "the-survey-tools-shared-secret"

type fixture struct {
	a      *auth.Authenticator
	file   string
	clock  *clock
	logs   *bytes.Buffer
	tokenA string
	h      http.Handler
	reg    *prometheus.Registry
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	tokenA, lineA, err := auth.NewToken("zendesk")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{file: filepath.Join(t.TempDir(), "credentials"), clock: &clock{t: time.Unix(1_795_000_000, 0)},
		logs: &bytes.Buffer{}, tokenA: tokenA}
	writeFile(t, f.file, "# test credentials\n"+lineA+"\nsurveys hmac "+webhookSecret+"  # the survey tool\n")
	f.reg = prometheus.NewRegistry()
	f.a, err = auth.New(auth.Config{Mode: auth.ModeRequired, File: f.file, Tolerance: 5 * time.Minute}, auth.Options{
		Now: f.clock.now, Registerer: f.reg, Reserved: map[string]string{"intercom": "the Intercom webhook's namespace"},
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		source, _, e := authenticate(f.a, r)
		if e != nil {
			w.WriteHeader(e.Code)
			json.NewEncoder(w).Encode(map[string]string{"error": e.Message})
			return
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s:%s", source, body)
	})
	return f
}

// authenticate is what ingest does with a request: its headers first, then, for a
// signed one, its body (which it gives back to the request).
func authenticate(a *auth.Authenticator, r *http.Request) (string, auth.Scope, *auth.Error) {
	source, scope, signed, e := a.Check(r.Header)
	if e != nil || signed == nil {
		return source, scope, e
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	return signed.Verify(body)
}

func (f *fixture) do(header map[string]string, body string) (int, string, http.Header) {
	req := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), rec.Header()
}

func (f *fixture) signed(ts time.Time, body string) map[string]string {
	return map[string]string{
		auth.HeaderSource:    "surveys",
		auth.HeaderTimestamp: strconv.FormatInt(ts.Unix(), 10),
		auth.HeaderSignature: auth.Sign([]byte(webhookSecret), ts.Unix(), []byte(body)),
	}
}

func errorOf(t *testing.T, body string) string {
	t.Helper()
	var e struct{ Error string }
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
		t.Fatalf("not an error answer: %s", body)
	}
	return e.Error
}

func TestTokens(t *testing.T) {
	f := newFixture(t)
	code, body, _ := f.do(map[string]string{"Authorization": "Bearer " + f.tokenA}, "events")
	if code != 200 || body != "zendesk:events" {
		t.Fatalf("valid token: %d %s", code, body)
	}
	code, body, _ = f.do(nil, "events")
	if code != http.StatusUnauthorized || !strings.Contains(errorOf(t, body), "credentials required") {
		t.Fatalf("no credentials: %d %s", code, body)
	}
	for _, authz := range []string{"Bearer cxl_nope", "Basic " + f.tokenA, "Bearer", f.tokenA} {
		if code, body, _ := f.do(map[string]string{"Authorization": authz}, "events"); code != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d %s", authz, code, body)
		}
	}
}

// Tokens are rotated by editing the file: the new one works and the old one is refused
// once removed, without a restart. A broken file keeps the credentials in force.
func TestRotationWithoutRestart(t *testing.T) {
	f := newFixture(t)
	tokenB, lineB, _ := auth.NewToken("zendesk")
	lineA := strings.SplitN(readFile(t, f.file), "\n", 3)[1]
	writeFile(t, f.file, lineA+"\n"+lineB+"\nsurveys hmac "+webhookSecret+"\n")
	f.clock.add(3 * time.Second)
	for _, tok := range []string{f.tokenA, tokenB} {
		if code, _, _ := f.do(map[string]string{"Authorization": "Bearer " + tok}, ""); code != 200 {
			t.Fatalf("during the rotation a token is refused: %d", code)
		}
	}
	writeFile(t, f.file, lineB+"\n")
	f.clock.add(3 * time.Second)
	if code, _, _ := f.do(map[string]string{"Authorization": "Bearer " + f.tokenA}, ""); code != http.StatusUnauthorized {
		t.Fatalf("the revoked token still works: %d", code)
	}
	if code, _, _ := f.do(map[string]string{"Authorization": "Bearer " + tokenB}, ""); code != 200 {
		t.Fatalf("the new token: %d", code)
	}
	if f.a.Stale() != nil || testutil.ToFloat64(gauge(t, f.reg, "cxlink_auth_reload_failing")) != 0 {
		t.Fatalf("a good file is reported stale: %v", f.a.Stale())
	}
	// A revocation with a typo: the file cannot be read, the last good credentials stay,
	// and the failure is reported in the log, by Stale and by the gauge the alert
	// CXLinkCredentialsReloadFailing watches, until the file is fixed.
	writeFile(t, f.file, "zendesk token not-a-hash\n")
	f.clock.add(3 * time.Second)
	if code, _, _ := f.do(map[string]string{"Authorization": "Bearer " + tokenB}, ""); code != 200 {
		t.Fatalf("after a broken edit the last good credentials must stay: %d", code)
	}
	if !strings.Contains(f.logs.String(), "not reloaded") {
		t.Errorf("the broken file was not reported:\n%s", f.logs)
	}
	if err := f.a.Stale(); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("Stale: %v", err)
	}
	if got := testutil.ToFloat64(gauge(t, f.reg, "cxlink_auth_reload_failing")); got != 1 {
		t.Errorf("cxlink_auth_reload_failing = %v, want 1", got)
	}
	// A source named after a vendor webhook is refused the same way.
	writeFile(t, f.file, strings.Replace(lineB, "zendesk", "intercom", 1)+"\n")
	f.clock.add(3 * time.Second)
	if err := f.a.Stale(); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("a reserved source: %v", err)
	}
	writeFile(t, f.file, lineB+"\n")
	f.clock.add(3 * time.Second)
	if err := f.a.Stale(); err != nil || testutil.ToFloat64(gauge(t, f.reg, "cxlink_auth_reload_failing")) != 0 {
		t.Errorf("fixed file still stale: %v", err)
	}
}

// gauge returns the registered metric name (without labels) as a collector.
func gauge(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
			g.Set(mf.GetMetric()[0].GetGauge().GetValue())
			return g
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

func readFile(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSignatures(t *testing.T) {
	f := newFixture(t)
	const body = `{"id":"x"}`
	now := f.clock.now()
	code, got, _ := f.do(f.signed(now, body), body)
	if code != 200 || got != "surveys:"+body {
		t.Fatalf("valid signature: %d %s (the handler must still read the body)", code, got)
	}
	// Signed a little while ago, or by a clock slightly ahead: inside the tolerance.
	for _, d := range []time.Duration{-4 * time.Minute, 4 * time.Minute} {
		if code, got, _ := f.do(f.signed(now.Add(d), body), body); code != 200 {
			t.Errorf("signed %s from now: %d %s", d, code, got)
		}
	}
	cases := map[string]struct {
		header map[string]string
		body   string
		says   string
	}{
		"replayed later":  {f.signed(now.Add(-10*time.Minute), body), body, "more than the 5m0s allowed"},
		"from the future": {f.signed(now.Add(10*time.Minute), body), body, "more than the 5m0s allowed"},
		"body changed":    {f.signed(now, body), `{"id":"y"}`, "does not match"},
		"another secret":  {map[string]string{auth.HeaderSource: "surveys", auth.HeaderTimestamp: strconv.FormatInt(now.Unix(), 10), auth.HeaderSignature: auth.Sign([]byte("some-other-secret-value"), now.Unix(), []byte(body))}, body, "does not match"},
		"unknown source":  {map[string]string{auth.HeaderSource: "zendesk", auth.HeaderTimestamp: "1", auth.HeaderSignature: "sha256=00"}, body, "must name a source that signs"},
		"bad timestamp":   {map[string]string{auth.HeaderSource: "surveys", auth.HeaderTimestamp: "yesterday", auth.HeaderSignature: "sha256=00"}, body, "Unix seconds"},
		"bad signature":   {map[string]string{auth.HeaderSource: "surveys", auth.HeaderTimestamp: strconv.FormatInt(now.Unix(), 10), auth.HeaderSignature: "md5=00"}, body, "sha256=<64 hex digits>"},
		"timestamp edited": {func() map[string]string {
			h := f.signed(now.Add(-10*time.Minute), body)
			h[auth.HeaderTimestamp] = strconv.FormatInt(now.Unix(), 10)
			return h
		}(), body, "does not match"},
	}
	for name, c := range cases {
		code, got, _ := f.do(c.header, c.body)
		if code != http.StatusUnauthorized || !strings.Contains(errorOf(t, got), c.says) {
			t.Errorf("%s: %d %s, want 401 saying %q", name, code, got, c.says)
		}
	}
	for _, secret := range []string{webhookSecret, f.tokenA} {
		if strings.Contains(f.logs.String(), secret) {
			t.Errorf("a secret was logged:\n%s", f.logs)
		}
	}
}

func TestCredentialsFileErrorsNameTheLine(t *testing.T) {
	file := filepath.Join(t.TempDir(), "credentials")
	writeFile(t, file, "ok token sha256:"+strings.Repeat("ab", 32)+"\nbad token cxl_plaintexttoken\nshort hmac abc\nx y\n")
	_, err := auth.New(auth.Config{Mode: auth.ModeRequired, File: file, Tolerance: time.Minute}, auth.Options{})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"line 2", "line 3", "line 4"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "cxl_plaintexttoken") || strings.Contains(err.Error(), "abc") {
		t.Errorf("the error repeats a credential: %v", err)
	}
}

func TestEnabled(t *testing.T) {
	for _, c := range []struct {
		cfg     auth.Config
		addr    string
		enabled bool
		fails   bool
	}{
		{auth.Config{Mode: "auto"}, "127.0.0.1:8080", false, false},
		{auth.Config{Mode: "auto"}, "[::1]:8080", false, false},
		{auth.Config{Mode: "auto"}, ":8080", false, true},
		{auth.Config{Mode: "auto"}, "10.0.0.5:8080", false, true},
		{auth.Config{Mode: "auto", File: "f"}, "127.0.0.1:8080", true, false},
		{auth.Config{Mode: "required", File: "f"}, ":8080", true, false},
		{auth.Config{Mode: "off"}, ":8080", false, false},
	} {
		enabled, err := c.cfg.Enabled(c.addr)
		if enabled != c.enabled || (err != nil) != c.fails {
			t.Errorf("%+v on %s: %v, %v", c.cfg, c.addr, enabled, err)
		}
	}
	err := auth.Config{Mode: "required", Tolerance: time.Minute}.Validate()
	if err == nil || !strings.Contains(err.Error(), "CXLINK_AUTH_FILE") {
		t.Errorf("required without a file: %v", err)
	}
}

// Each credential carries its scope into the request; a line without one (written
// before scopes) may send surveys and tickets, never pulses, and is named in the log.
func TestScopes(t *testing.T) {
	hrToken, hrLine, err := auth.NewToken("hr", "types=employee_pulse", "teams=alpha,bravo")
	if err != nil || !strings.HasSuffix(hrLine, " types=employee_pulse teams=alpha,bravo") {
		t.Fatalf("%q %v", hrLine, err)
	}
	oldToken, oldLine, _ := auth.NewToken("zendesk")
	oldLine = strings.TrimSuffix(oldLine, " types=survey_response,ticket") // as written before scopes
	file := filepath.Join(t.TempDir(), "credentials")
	writeFile(t, file, hrLine+"\n"+oldLine+"\n")
	logs := &bytes.Buffer{}
	a, err := auth.New(auth.Config{Mode: auth.ModeRequired, File: file, Tolerance: time.Minute},
		auth.Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "lines=[2]") || !strings.Contains(logs.String(), "never employee pulses") {
		t.Errorf("the line without scope is not reported: %s", logs)
	}
	scopeOf := func(token string) auth.Scope {
		_, scope, signed, e := a.Check(http.Header{"Authorization": {"Bearer " + token}})
		if e != nil || signed != nil {
			t.Fatalf("%v", e)
		}
		return scope
	}
	pulse := &event.Event{Type: event.TypeEmployeePulse, Team: "alpha"}
	if fe := scopeOf(hrToken).Check("hr", pulse); fe != nil {
		t.Errorf("HR credential, team alpha: %v", fe)
	}
	if fe := scopeOf(hrToken).Check("hr", &event.Event{Type: event.TypeEmployeePulse, Team: "kilo"}); fe == nil || fe.Field != "team" {
		t.Errorf("HR credential, team kilo: %v", fe)
	}
	if fe := scopeOf(hrToken).Check("hr", &event.Event{Type: event.TypeTicket, Team: "alpha"}); fe == nil || fe.Field != "type" {
		t.Errorf("HR credential, a ticket: %v", fe)
	}
	if fe := scopeOf(oldToken).Check("zendesk", pulse); fe == nil || fe.Field != "type" || !strings.Contains(fe.Message, "HR source") {
		t.Errorf("a credential without scope sends a pulse: %v", fe)
	}
	if fe := scopeOf(oldToken).Check("zendesk", &event.Event{Type: event.TypeSurveyResponse}); fe != nil {
		t.Errorf("a credential without scope sends a survey: %v", fe)
	}
	for _, bad := range []string{"types=", "types=pulse", "colour=red", "types=ticket types=ticket"} {
		writeFile(t, file, "x token sha256:"+strings.Repeat("ab", 32)+" "+bad+"\n")
		if _, err := auth.New(auth.Config{Mode: auth.ModeRequired, File: file, Tolerance: time.Minute}, auth.Options{Registerer: prometheus.NewRegistry()}); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("scope %q: %v", bad, err)
		}
	}
}
