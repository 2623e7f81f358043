package apptest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/cxlink/cxlink/cmd/cxlink/app"
)

// Role is a cxlink command (app.Run: run, ingest, process, drift, …) running in the
// test's own process.
type Role struct {
	// URL is the base URL of its HTTP listener, e.g. http://127.0.0.1:41234 (https:// is
	// the caller's to choose when it serves TLS).
	URL string
	// Addr is host:port of that listener.
	Addr string

	stop func()
	done chan error
	once sync.Once
	err  error
}

// StartRole runs `cxlink args…` with env in this process and returns once its HTTP
// listener accepts requests; its log goes to logs, or to the test's log when logs is
// nil. It stops when the test ends, and a failing exit fails the test.
func StartRole(t testing.TB, env map[string]string, logs io.Writer, args ...string) *Role {
	t.Helper()
	if logs == nil {
		logs = TestLog(t, args[0])
	}
	ctx, stop := context.WithCancel(context.WithoutCancel(t.Context()))
	addr := make(chan string, 1)
	r := &Role{stop: stop, done: make(chan error, 1)}
	go func() {
		r.done <- app.Run(ctx, args, app.Options{Environ: env, Stderr: logs, Listening: func(a string) { addr <- a }})
	}()
	select {
	case r.Addr = <-addr:
		r.URL = "http://" + r.Addr
	case err := <-r.done:
		stop()
		t.Fatalf("cxlink %s: %v", args[0], err)
	case <-time.After(time.Minute):
		stop()
		t.Fatalf("cxlink %s did not start listening within a minute", args[0])
	}
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Errorf("cxlink %s: %v", args[0], err)
		}
	})
	return r
}

// Stop ends the role as SIGTERM would and returns what it returned; after the first
// call, it returns the same.
func (r *Role) Stop() error {
	r.once.Do(func() {
		r.stop()
		select {
		case r.err = <-r.done:
		case <-time.After(time.Minute):
			r.err = fmt.Errorf("did not stop within a minute")
		}
	})
	return r.err
}

// TestLog is a writer into the test's log, each line prefixed with name.
func TestLog(t testing.TB, name string) io.Writer { return testLog{t, name} }

type testLog struct {
	t    testing.TB
	name string
}

func (w testLog) Write(p []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, bytes.TrimRight(p, "\n"))
	return len(p), nil
}

// LogBuffer collects a role's log for a test to read while the role writes.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
