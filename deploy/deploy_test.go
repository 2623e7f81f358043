// Package deploy holds the deployment files; its tests validate them offline with the
// real tools: docker-compose, promtool and amtool.
package deploy

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
	for _, want := range []string{"nats", "clickhouse", "ingest", "process", "simulator", "prometheus", "alertmanager", "grafana"} {
		if !slices.Contains(services, want) {
			t.Errorf("docker-compose.yml has no service %q (has %v)", want, services)
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
