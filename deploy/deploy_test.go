// Package deploy holds the deployment files; its tests validate them offline with the
// real tools: docker-compose, promtool and amtool.
package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cxlink/cxlink/processors/drift"
)

// tool runs a command from the deploy directory and fails the test with its output, or
// with how to install it when it is missing.
func tool(t *testing.T, pkg string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(args[0]); err != nil {
		t.Fatalf("%s not found: install it with `apt-get install %s`, or run deploy/local/test.sh", args[0], pkg)
	}
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestComposeFile(t *testing.T) {
	out := tool(t, "docker-compose", "docker-compose", "-f", "../docker-compose.yml", "--profile", "demo", "config", "--services")
	services := strings.Fields(out)
	for _, want := range []string{"nats-1", "nats-2", "nats-3", "clickhouse", "migrate", "ingest", "process", "drift", "simulator", "alert-receiver", "prometheus", "alertmanager", "grafana"} {
		if !slices.Contains(services, want) {
			t.Errorf("docker-compose.yml has no service %q (has %v)", want, services)
		}
	}
	// The roles as on Kubernetes: the definitions first, then replicas and a standby.
	var compose struct {
		Services map[string]struct {
			Deploy struct {
				Replicas int `yaml:"replicas"`
			} `yaml:"deploy"`
			DependsOn map[string]struct {
				Condition string `yaml:"condition"`
			} `yaml:"depends_on"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal([]byte(tool(t, "docker-compose", "docker-compose", "-f", "../docker-compose.yml", "config")), &compose); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"ingest", "process", "drift"} {
		s := compose.Services[role]
		if s.DependsOn["migrate"].Condition != "service_completed_successfully" {
			t.Errorf("%s does not wait for migrate: %v", role, s.DependsOn)
		}
		if role != "ingest" && s.Deploy.Replicas < 2 {
			t.Errorf("%s: %d replicas, want 2 or more", role, s.Deploy.Replicas)
		}
		if s.Environment["CXLINK_STREAM_REPLICAS"] != "3" || strings.Count(s.Environment["NATS_URL"], "nats://") != 3 {
			t.Errorf("%s: not on the 3-node cluster with R3: %q, %q", role, s.Environment["NATS_URL"], s.Environment["CXLINK_STREAM_REPLICAS"])
		}
	}
}

func TestPrometheusConfig(t *testing.T) {
	tool(t, "prometheus", "promtool", "check", "config", "prometheus/prometheus.yml")
}

func TestPrometheusRules(t *testing.T) {
	rules, _ := filepath.Glob("prometheus/rules/*.yml")
	tests, _ := filepath.Glob("prometheus/tests/*.test.yml")
	if len(rules) == 0 || len(tests) == 0 {
		t.Fatalf("rules %v, rule tests %v", rules, tests)
	}
	tool(t, "prometheus", append([]string{"promtool", "check", "rules"}, rules...)...)
	tool(t, "prometheus", append([]string{"promtool", "test", "rules"}, tests...)...)
}

func TestAlertmanagerConfig(t *testing.T) {
	tool(t, "prometheus-alertmanager", "amtool", "check-config", "alertmanager/alertmanager.yml")
}

// TestAlertmanagerRoutes checks where alerts go, with amtool's own router.
func TestAlertmanagerRoutes(t *testing.T) {
	for _, tc := range []struct {
		labels   []string
		receiver string
	}{
		{[]string{"alertname=CXLinkCESDrop", "owner=product", "severity=warning", "kind=business"}, "product"},
		{[]string{"alertname=CXLinkCESDrop", "owner=web", "severity=warning", "kind=business"}, "web"},
		{[]string{"alertname=CXLinkCESDrop", "owner=support", "severity=critical", "kind=business"}, "support-page"},
		{[]string{"alertname=CXLinkCSATDrop", "owner=support", "severity=warning", "kind=business"}, "support"},
		{[]string{"alertname=CXLinkCESDrop", "owner=support", "severity=warning", "kind=business", "dimension=team", "team=alpha"}, "support"},
		{[]string{"alertname=CXLinkCESDrop", "owner=web", "severity=warning", "kind=business", "dimension=channel", "channel=web"}, "web"},
		{[]string{"alertname=CXLinkDown", "owner=platform", "severity=critical", "kind=pipeline"}, "platform-page"},
		{[]string{"alertname=CXLinkNoData", "owner=platform", "severity=warning", "kind=pipeline"}, "platform"},
		{[]string{"alertname=CXLinkCESDrop", "owner=finance", "severity=warning", "kind=business"}, "on-call"},
	} {
		args := append([]string{"amtool", "config", "routes", "test", "--config.file=alertmanager/alertmanager.yml",
			"--verify.receivers=" + tc.receiver}, tc.labels...)
		tool(t, "prometheus-alertmanager", args...)
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string
		Rules []struct {
			Alert, Record, Expr string
			For                 string
			KeepFiringFor       string `yaml:"keep_firing_for"`
			Labels, Annotations map[string]string
		}
	}
}

// TestEveryAlertIsTestedAndDocumented: each alert has its annotations, a `for:`, a
// promtool test, an owner and kind, and a section in docs/runbook.md.
func TestEveryAlertIsTestedAndDocumented(t *testing.T) {
	rules, _ := filepath.Glob("prometheus/rules/*.yml")
	var tests strings.Builder
	files, _ := filepath.Glob("prometheus/tests/*.test.yml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tests.Write(b)
	}
	runbook, err := os.ReadFile("../docs/runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	alerts := 0
	for _, f := range rules {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf ruleFile
		if err := yaml.Unmarshal(b, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				alerts++
				for _, a := range []string{"summary", "description", "runbook"} {
					if r.Annotations[a] == "" {
						t.Errorf("%s: alert %s has no %s", f, r.Alert, a)
					}
				}
				if r.For == "" {
					t.Errorf("%s: alert %s has no for:", f, r.Alert)
				}
				if r.Labels["kind"] == "" || r.Labels["severity"] == "" || (r.Labels["kind"] == "pipeline") != (r.Labels["owner"] == "platform") {
					t.Errorf("%s: alert %s: labels %v; want kind, severity, and owner platform on pipeline alerts", f, r.Alert, r.Labels)
				}
				if !strings.Contains(tests.String(), "alertname: "+r.Alert+",") && !strings.Contains(tests.String(), "alertname: "+r.Alert+"\n") {
					t.Errorf("alert %s has no promtool test in prometheus/tests", r.Alert)
				}
				if !strings.Contains(string(runbook), "\n## "+r.Alert+"\n") {
					t.Errorf("alert %s has no section \"## %s\" in docs/runbook.md", r.Alert, r.Alert)
				}
				if anchor := "#" + strings.ToLower(r.Alert); !strings.HasSuffix(r.Annotations["runbook"], anchor) {
					t.Errorf("alert %s: runbook %q does not end in %s", r.Alert, r.Annotations["runbook"], anchor)
				}
			}
		}
	}
	if alerts < 10 {
		t.Errorf("found only %d alerts", alerts)
	}
}

// The business rules' thresholds are the drift detector's defaults, which decide what
// drift_events records: alerts and recorded episodes must agree.
func TestDriftRulesMatchDetectorDefaults(t *testing.T) {
	cfg := drift.DefaultConfig()
	b, err := os.ReadFile("prometheus/rules/cxlink-drift.yml")
	if err != nil {
		t.Fatal(err)
	}
	rules := string(b)
	for _, want := range []string{
		fmt.Sprintf(`side="recent"} >= %d)`, cfg.MinRecent),
		fmt.Sprintf(`side="baseline"} >= %d)`, cfg.MinBaseline),
		fmt.Sprintf(`detector="mean"} <= -%v`, cfg.Z),
		fmt.Sprintf(`detector="negative_share"} >= %v`, cfg.Z),
		fmt.Sprintf(`detector="mean"} <= -%v`, cfg.ClearZ),
		fmt.Sprintf(`detector="negative_share"} >= %v`, cfg.ClearZ),
		fmt.Sprintf(`detector="ewma"} <= -%v`, cfg.Z),
		fmt.Sprintf(`detector="ewma"} <= -%v`, cfg.ClearZ),
		fmt.Sprintf(`abs(cxlink:drift_effect) >= %v`, cfg.MinEffect),
	} {
		if !strings.Contains(rules, want) {
			t.Errorf("cxlink-drift.yml lacks %q (the drift detector's default)", want)
		}
	}
	// No other thresholds hide in the drift alerts.
	for _, m := range regexp.MustCompile(`(<=|>=) -?[0-9.]+`).FindAllString(rules, -1) {
		v := strings.TrimLeft(strings.Fields(m)[1], "-")
		if !slices.Contains([]string{fmt.Sprint(cfg.Z), fmt.Sprint(cfg.ClearZ), fmt.Sprint(cfg.MinRecent), fmt.Sprint(cfg.MinBaseline), fmt.Sprint(cfg.MinEffect)}, v) {
			t.Errorf("cxlink-drift.yml: threshold %q is not a drift detector default", m)
		}
	}
}
