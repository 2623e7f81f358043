package deploy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest/proc"
)

// The demo's server scripts start, report and stop their servers through one daemon
// helper (local/lib/daemon.sh); the ClickHouse one configures its server from the
// template the tests' servers use (clickhouse/).
func TestLocalServerScripts(t *testing.T) {
	ports, err := proc.FreePorts(6)
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "CXLINK_DATA_DIR="+t.TempDir(),
		"CLICKHOUSE_PORT="+strconv.Itoa(ports[0]), "CLICKHOUSE_HTTP_PORT="+strconv.Itoa(ports[1]),
		"CLICKHOUSE_INTERSERVER_PORT="+strconv.Itoa(ports[2]), "PROMETHEUS_PORT="+strconv.Itoa(ports[3]),
		"ALERTMANAGER_PORT="+strconv.Itoa(ports[4]), "ALERTS_RECEIVER_PORT="+strconv.Itoa(ports[5]))
	script := func(name, cmd string) (string, error) {
		c := exec.Command("local/"+name+".sh", cmd)
		c.Env = env
		out, err := c.CombinedOutput()
		return string(out), err
	}
	for _, s := range []struct {
		name  string
		ready func() error
	}{
		{"clickhouse", func() error {
			conn, err := ch.Open(&ch.Options{Addr: []string{fmt.Sprintf("127.0.0.1:%d", ports[0])}})
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return conn.Exec(ctx, "CREATE DATABASE scripted")
		}},
		{"prometheus", func() error { return ready(fmt.Sprintf("http://127.0.0.1:%d/-/ready", ports[3])) }},
		{"alertmanager", func() error { return ready(fmt.Sprintf("http://127.0.0.1:%d/-/ready", ports[4])) }},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Cleanup(func() { script(s.name, "stop") })
			if out, err := script(s.name, "start"); err != nil || !strings.Contains(out, "ready") {
				t.Fatalf("start: %v\n%s", err, out)
			}
			// The port is open: the server answers soon after.
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				err := s.ready()
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after start: %v", err)
				}
			}
			if out, err := script(s.name, "start"); err != nil || !strings.Contains(out, "already running") {
				t.Errorf("second start: %v\n%s", err, out)
			}
			if out, err := script(s.name, "status"); err != nil || !strings.Contains(out, "running (pid") {
				t.Errorf("status: %v\n%s", err, out)
			}
			if out, err := script(s.name, "stop"); err != nil || !strings.Contains(out, "stopped") {
				t.Errorf("stop: %v\n%s", err, out)
			}
			if out, err := script(s.name, "status"); err == nil || !strings.Contains(out, "not running") {
				t.Errorf("status after stop: %v\n%s", err, out)
			}
			if s.ready() == nil {
				t.Error("still answers after stop")
			}
		})
	}
}

// ready asks url once for 200 OK.
func ready(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return proc.HTTPReady(url)(ctx)
}
