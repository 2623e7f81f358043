package main

// The alerting stack of the end-to-end alerting tests: a real Prometheus loading the
// project's rules (durations scaled), a real Alertmanager with the project's routing, and
// the webhook receiver an owner would have.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cxlink/cxlink/cmd/cxlink/app"
)

// notification is one webhook call Alertmanager made.
type notification struct {
	at   time.Time
	path string
	body app.AlertNotification
}

type receiver struct {
	mu  sync.Mutex
	got []notification
	new chan struct{}
}

// startReceiver serves the webhooks of the owners' receivers until the test ends; the
// returned URL takes the place of the receivers' host in alertmanager.yml.
func startReceiver(t *testing.T) (*receiver, string) {
	rcv := &receiver{new: make(chan struct{}, 1)}
	hook := httptest.NewServer(app.AlertReceiver{Notify: func(path string, n app.AlertNotification) {
		rcv.mu.Lock()
		rcv.got = append(rcv.got, notification{time.Now(), path, n})
		rcv.mu.Unlock()
		select {
		case rcv.new <- struct{}{}:
		default:
		}
	}})
	t.Cleanup(hook.Close)
	return rcv, hook.URL
}

func (r *receiver) all() []notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notification(nil), r.got...)
}

// waitFor waits until some notification satisfies match, and returns it.
func (r *receiver) waitFor(t *testing.T, what string, timeout time.Duration, match func(notification) bool) notification {
	t.Helper()
	deadline := time.After(timeout)
	for {
		for _, n := range r.all() {
			if match(n) {
				return n
			}
		}
		select {
		case <-r.new:
		case <-deadline:
			t.Fatalf("no %s within %s; notifications: %s", what, timeout, describe(r.all()))
		}
	}
}

func describe(ns []notification) string {
	var b strings.Builder
	for _, n := range ns {
		fmt.Fprintf(&b, "\n  %s %s %s:", n.at.Format("15:04:05.000"), n.path, n.body.Status)
		for _, a := range n.body.Alerts {
			fmt.Fprintf(&b, " [%s %s owner=%s %s/%s %s]", a.Status, a.Labels["alertname"], a.Labels["owner"], a.Labels["dimension"], a.Labels["key"], a.Labels["detector"])
		}
	}
	return b.String()
}

// lookBinary finds the first of names on PATH, or fails with how to install it.
func lookBinary(t *testing.T, pkg string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Fatalf("%s not found: install it with `apt-get install %s`, or run deploy/local/test.sh", names[0], pkg)
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startProcess runs a server until the test ends; its log is shown if the test fails.
func startProcess(t *testing.T, dir, name string, argv ...string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr, cmd.Dir = logFile, logFile, dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, tail(string(b), 40))
		}
	})
}

// waitReady waits until url answers 200.
func waitReady(t *testing.T, name, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready at %s: %v", name, url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scaleDurations turns the rules' `for:` and `keep_firing_for:` minutes into seconds
// (and hours into minutes), for a test that runs 60 times faster.
var ruleDuration = regexp.MustCompile(`(?m)^(\s*(?:for|keep_firing_for):\s*)(\d+)([mh])\s*$`)

func scaleDurations(rules string) string {
	return ruleDuration.ReplaceAllStringFunc(rules, func(m string) string {
		p := ruleDuration.FindStringSubmatch(m)
		n, _ := strconv.Atoi(p[2])
		if p[3] == "h" {
			return p[1] + strconv.Itoa(n) + "m"
		}
		return p[1] + strconv.Itoa(n) + "s"
	})
}

// startPrometheus runs Prometheus scraping cxlink every second and sending to
// Alertmanager. The project's rules (durations scaled) are loaded once the first scrapes
// are in: Prometheus starts scraping only after its service discovery's first update (a
// few seconds), and until then an alert on missing metrics would be right.
func startPrometheus(t *testing.T, bin, dir, target, alertmanager string) string {
	t.Helper()
	rules, _ := filepath.Glob("../../deploy/prometheus/rules/*.yml")
	if len(rules) < 3 {
		t.Fatalf("rule files: %v", rules)
	}
	if err := os.MkdirAll(filepath.Join(dir, "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		b, err := os.ReadFile(r)
		if err != nil {
			t.Fatal(err)
		}
		scaled := scaleDurations(string(b))
		if strings.Contains(scaled, "for: 5m") {
			t.Fatalf("durations of %s not scaled", r)
		}
		if err := os.WriteFile(filepath.Join(dir, "rules", filepath.Base(r)), []byte(scaled), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig := func(ruleFiles string) {
		config := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%s]
alerting:
  alertmanagers:
    - static_configs: [{targets: ['%s']}]
scrape_configs:
  - job_name: cxlink
    static_configs: [{targets: ['%s']}]
`, ruleFiles, alertmanager, target)
		if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("")
	promURL := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	startProcess(t, dir, "prometheus", bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+strings.TrimPrefix(promURL, "http://"),
		"--web.enable-lifecycle", "--rules.alert.resend-delay=1s")
	waitReady(t, "prometheus", promURL+"/-/ready")
	waitPromQuery(t, promURL, `cxlink_drift_last_evaluated_tick_timestamp_seconds`)
	writeConfig("'" + dir + "/rules/*.yml'")
	resp, err := http.Post(promURL+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("prometheus reload: %s", resp.Status)
	}
	return promURL
}

// startAlertmanager runs Alertmanager with the project's configuration, its webhooks
// pointed at the test's receiver and its groups sent within a second.
func startAlertmanager(t *testing.T, bin, dir, receiverURL string) string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/alertmanager/alertmanager.yml")
	if err != nil {
		t.Fatal(err)
	}
	config := strings.ReplaceAll(string(b), "http://alert-receiver:9094", receiverURL)
	for old, new := range map[string]string{"group_wait: 30s": "group_wait: 1s", "group_wait: 5m": "group_wait: 5s",
		"group_interval: 5m": "group_interval: 1s"} {
		if !strings.Contains(config, old) {
			t.Fatalf("alertmanager.yml has no %q to shorten", old)
		}
		config = strings.ReplaceAll(config, old, new)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	amURL := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	startProcess(t, dir, "alertmanager", bin, "--config.file="+filepath.Join(dir, "alertmanager.yml"),
		"--storage.path="+filepath.Join(dir, "data"), "--web.listen-address="+strings.TrimPrefix(amURL, "http://"),
		"--cluster.listen-address=")
	waitReady(t, "alertmanager", amURL+"/-/ready")
	return amURL
}

// waitMetric waits until the metrics page has a sample of series.
func waitMetric(t *testing.T, metricsURL, series string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(metricsURL)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), series+" ") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no %s", metricsURL, series)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitPromQuery waits until an instant query returns a sample.
func waitPromQuery(t *testing.T, promURL, query string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(promURL + "/api/v1/query?query=" + url.QueryEscape(query))
		if err == nil {
			var r struct {
				Data struct{ Result []json.RawMessage }
			}
			json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
			if len(r.Data.Result) > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus: no result for %s", query)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
