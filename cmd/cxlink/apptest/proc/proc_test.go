package proc

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestProcessLifecycle(t *testing.T) {
	marker := t.TempDir() + "/ready"
	p := Start(t, Spec{Name: "sleeper", Argv: []string{"/bin/sh", "-c", "echo started; touch " + marker + "; exec sleep 60"},
		Ready: func(context.Context) error { _, err := os.Stat(marker); return err }})
	if !p.Running() || p.Exited() != nil {
		t.Fatalf("running %v, exited %v", p.Running(), p.Exited())
	}
	if err := p.Start(); err == nil {
		t.Error("a second Start of a running process succeeded")
	}
	p.Kill()
	if p.Running() {
		t.Error("running after Kill")
	}
	os.Remove(marker) // ready again only once the new process wrote it
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	// sleep exits 143 on SIGTERM: Stop reports how it ended.
	var ee interface{ ExitCode() int }
	if err := p.Stop(); !errors.As(err, &ee) {
		t.Errorf("Stop: %v", err)
	}
	log := p.Log()
	for _, want := range []string{"---- start sleeper", "started", "---- killed sleeper", "---- terminated sleeper"} {
		if !strings.Contains(log, want) {
			t.Errorf("log has no %q:\n%s", want, log)
		}
	}
	if strings.Count(log, "started\n") != 2 {
		t.Errorf("the log does not hold both runs:\n%s", log)
	}
}

func TestProcessExitBeforeReady(t *testing.T) {
	p := New(t, Spec{Name: "quitter", Argv: []string{"/bin/sh", "-c", "echo goodbye; exit 3"},
		Ready: func(context.Context) error { return errors.New("never") }})
	err := p.Start()
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "goodbye") {
		t.Fatalf("Start of a process that exits: %v", err)
	}
	if p.Running() {
		t.Error("running after a failed start")
	}
}

func TestExitedOnItsOwn(t *testing.T) {
	p := Start(t, Spec{Name: "brief", Argv: []string{"/bin/true"}})
	deadline := time.Now().Add(10 * time.Second)
	for p.Exited() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no exit noticed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Signal(syscall.SIGTERM, time.Second); err != nil {
		t.Errorf("Signal after an exit with status 0: %v", err)
	}
}

func TestFreePortsAreNotHandedOutTwice(t *testing.T) {
	seen := map[int]bool{}
	lo, hi := portRange()
	for range 50 {
		p := FreePort(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		if p < lo || p >= hi {
			t.Errorf("port %d is outside %d–%d, below the ephemeral range", p, lo, hi)
		}
		seen[p] = true
	}
}

func TestRepoPath(t *testing.T) {
	if _, err := os.Stat(RepoPath(t, "deploy/local/test.sh")); err != nil {
		t.Fatal(err)
	}
}
