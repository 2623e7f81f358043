package apptest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest/proc"
)

// PrometheusConfig is what a test's Prometheus does.
type PrometheusConfig struct {
	// Targets are the host:port of the cxlink processes it scrapes (/metrics).
	Targets []string
	// Alertmanager, when set, is host:port of the Alertmanager it sends alerts to.
	Alertmanager string
	// RuleFiles are rule files or globs; none: no rules (SetRuleFiles adds them later).
	RuleFiles []string
}

// Prometheus is a real Prometheus (Debian's prometheus on PATH) scraping and evaluating
// every second.
type Prometheus struct {
	// URL is its base URL, e.g. http://127.0.0.1:41234.
	URL string
	t   testing.TB
	cfg PrometheusConfig
	dir string
}

// StartPrometheus starts Prometheus with cfg and waits until it is ready. It is killed
// when the test ends, and its log shown if the test failed.
func StartPrometheus(t testing.TB, cfg PrometheusConfig) *Prometheus {
	t.Helper()
	bin := proc.LookPath(t, "prometheus", "prometheus")
	p := &Prometheus{t: t, cfg: cfg, dir: t.TempDir()}
	p.writeConfig()
	addr := proc.FreeAddr(t)
	p.URL = "http://" + addr
	proc.Start(t, proc.Spec{Name: "prometheus", Dir: p.dir, Ready: proc.HTTPReady(p.URL + "/-/ready"),
		Argv: []string{bin, "--config.file=" + filepath.Join(p.dir, "prometheus.yml"),
			"--storage.tsdb.path=" + filepath.Join(p.dir, "data"), "--web.listen-address=" + addr,
			"--web.enable-lifecycle", "--rules.alert.resend-delay=1s"}})
	return p
}

func (p *Prometheus) writeConfig() {
	p.t.Helper()
	quote := func(ss []string) string {
		var q []string
		for _, s := range ss {
			q = append(q, strconv.Quote(s))
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	config := fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\nrule_files: %s\n"+
		"scrape_configs:\n  - job_name: cxlink\n    static_configs: [{targets: %s}]\n", quote(p.cfg.RuleFiles), quote(p.cfg.Targets))
	if p.cfg.Alertmanager != "" {
		config += fmt.Sprintf("alerting:\n  alertmanagers:\n    - static_configs: [{targets: %s}]\n", quote([]string{p.cfg.Alertmanager}))
	}
	if err := os.WriteFile(filepath.Join(p.dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// SetRuleFiles replaces the rule files and reloads the configuration.
func (p *Prometheus) SetRuleFiles(files ...string) {
	p.t.Helper()
	p.cfg.RuleFiles = files
	p.writeConfig()
	resp, err := http.Post(p.URL+"/-/reload", "", nil)
	if err != nil {
		p.t.Fatalf("prometheus reload: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		p.t.Fatalf("prometheus reload: %s", resp.Status)
	}
}

// PromResult is the answer of a query.
type PromResult struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		Result []json.RawMessage `json:"result"`
	} `json:"data"`
}

// Query runs an instant query now.
func (p *Prometheus) Query(expr string) (PromResult, error) {
	return p.get("/api/v1/query", url.Values{"query": {expr}})
}

// QueryRange runs a range query from … to, a sample every step.
func (p *Prometheus) QueryRange(expr string, from, to time.Time, step time.Duration) (PromResult, error) {
	return p.get("/api/v1/query_range", url.Values{"query": {expr}, "start": {strconv.FormatInt(from.Unix(), 10)},
		"end": {strconv.FormatInt(to.Unix(), 10)}, "step": {strconv.Itoa(int(max(step.Seconds(), 1)))}})
}

func (p *Prometheus) get(path string, q url.Values) (PromResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+path+"?"+q.Encode(), nil)
	if err != nil {
		return PromResult{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return PromResult{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r PromResult
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	if r.Status != "success" {
		return r, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	return r, nil
}

// WaitQuery waits up to timeout until an instant query of expr returns a sample.
func (p *Prometheus) WaitQuery(expr string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r, err := p.Query(expr)
		if err == nil && len(r.Data.Result) > 0 {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("prometheus: no result for %s within %s (last error: %v)", expr, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
