package apptest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest/proc"
)

// Alertmanager is a real Alertmanager (Debian's prometheus-alertmanager on PATH), a
// single instance without gossip.
type Alertmanager struct {
	// URL is its base URL; Addr its host:port, for Prometheus to send to.
	URL, Addr string
}

// StartAlertmanager starts Alertmanager with the configuration config (YAML) and waits
// until it is ready. It is killed when the test ends, and its log shown if the test
// failed.
func StartAlertmanager(t testing.TB, config string) *Alertmanager {
	t.Helper()
	bin := proc.LookPath(t, "prometheus-alertmanager", "prometheus-alertmanager", "alertmanager")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	am := &Alertmanager{Addr: proc.FreeAddr(t)}
	am.URL = "http://" + am.Addr
	// --cluster.listen-address= : a single instance, no gossip port.
	proc.Start(t, proc.Spec{Name: "alertmanager", Dir: dir, Ready: proc.HTTPReady(am.URL + "/-/ready"),
		Argv: []string{bin, "--config.file=" + filepath.Join(dir, "alertmanager.yml"),
			"--storage.path=" + filepath.Join(dir, "data"), "--web.listen-address=" + am.Addr, "--cluster.listen-address="}})
	return am
}
