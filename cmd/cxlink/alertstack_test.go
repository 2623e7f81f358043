package main

// The alerting stack of the end-to-end alerting tests: a real Prometheus loading the
// project's rules (durations scaled), a real Alertmanager with the project's routing, and
// the webhook receiver an owner would have.

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxlink/cxlink/cmd/cxlink/app"
	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
	"github.com/cxlink/cxlink/cmd/cxlink/apptest/proc"
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

// prometheusWithScaledRules runs Prometheus scraping cxlink every second and sending to
// Alertmanager. The project's rules (durations scaled) are loaded once the first scrapes
// are in: Prometheus starts scraping only after its service discovery's first update (a
// few seconds), and until then an alert on missing metrics would be right.
func prometheusWithScaledRules(t *testing.T, target, alertmanager string) *apptest.Prometheus {
	t.Helper()
	rules, _ := filepath.Glob(proc.RepoPath(t, "deploy/prometheus/rules/*.yml"))
	if len(rules) < 3 {
		t.Fatalf("rule files: %v", rules)
	}
	dir := t.TempDir()
	for _, r := range rules {
		b, err := os.ReadFile(r)
		if err != nil {
			t.Fatal(err)
		}
		scaled := scaleDurations(string(b))
		if strings.Contains(scaled, "for: 5m") {
			t.Fatalf("durations of %s not scaled", r)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(r)), []byte(scaled), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	prom := apptest.StartPrometheus(t, apptest.PrometheusConfig{Targets: []string{target}, Alertmanager: alertmanager})
	prom.WaitQuery(`cxlink_drift_last_evaluated_tick_timestamp_seconds`, time.Minute)
	prom.SetRuleFiles(filepath.Join(dir, "*.yml"))
	return prom
}

// alertmanagerConfig is the project's Alertmanager configuration with its webhooks
// pointed at the test's receiver and its groups sent within a second.
func alertmanagerConfig(t *testing.T, receiverURL string) string {
	t.Helper()
	b, err := os.ReadFile(proc.RepoPath(t, "deploy/alertmanager/alertmanager.yml"))
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
	return config
}
