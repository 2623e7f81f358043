// Package proc runs the real server processes of tests (ClickHouse, nats-server,
// Prometheus, Alertmanager, cxlink itself): each with its output in a log file that is
// shown when the test fails, stopped when the test ends, and killed by the kernel should
// the test binary die first (Linux). It also hands out free loopback ports and finds the
// repository's own files. Import it from tests only.
package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Spec says how to run a process.
type Spec struct {
	// Name names the process in logs and messages, e.g. "prometheus" or "nats-1".
	Name string
	// Argv is the command line: the binary, then its arguments.
	Argv []string
	// Dir is the working directory, which also receives the log file NAME.log. Empty:
	// a new temporary directory of the test.
	Dir string
	// Env, when not nil, is the whole environment of the process; nil inherits the
	// test's.
	Env []string
	// Ready, when set, is polled after every start until it returns nil; Start fails if
	// the process exits first or ReadyTimeout passes.
	Ready func(ctx context.Context) error
	// ReadyTimeout defaults to a minute: a loaded CI machine can be slow.
	ReadyTimeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before it kills; default 30 s.
	StopTimeout time.Duration
}

// Process is a process of a test. It can be started again after it stopped, with the
// same command line, and appends to the same log. Its methods may be called from any
// goroutine.
type Process struct {
	t       testing.TB
	spec    Spec
	logPath string

	mu  sync.Mutex
	run *run // nil while not started by Start, or after Stop, Kill or Signal
}

type run struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process exited
	err  error         // of Wait, set before done is closed
}

// New prepares a process without starting it. When the test ends the process is killed,
// and the end of its log is shown if the test failed.
func New(t testing.TB, spec Spec) *Process {
	t.Helper()
	if spec.Name == "" || len(spec.Argv) == 0 {
		t.Fatalf("proc: a process needs a name and a command line: %+v", spec)
	}
	if spec.Dir == "" {
		spec.Dir = t.TempDir()
	} else if err := os.MkdirAll(spec.Dir, 0o755); err != nil {
		t.Fatalf("proc: %v", err)
	}
	if spec.ReadyTimeout == 0 {
		spec.ReadyTimeout = time.Minute
	}
	if spec.StopTimeout == 0 {
		spec.StopTimeout = 30 * time.Second
	}
	p := &Process{t: t, spec: spec, logPath: filepath.Join(spec.Dir, spec.Name+".log")}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s log (%s), last lines:\n%s", spec.Name, p.logPath, Tail(p.Log(), 60))
		}
	})
	return p
}

// Start runs a new process of spec and waits until it is ready; a failure ends the test.
func Start(t testing.TB, spec Spec) *Process {
	t.Helper()
	p := New(t, spec)
	if err := p.Start(); err != nil {
		t.Fatalf("proc: %v", err)
	}
	return p
}

// Name is the process's name.
func (p *Process) Name() string { return p.spec.Name }

// Start starts the process and waits until it is ready. If it does not get ready, it is
// killed and the error quotes the end of its log.
func (p *Process) Start() error {
	p.mu.Lock()
	if p.run != nil {
		p.mu.Unlock()
		return fmt.Errorf("start %s: already running", p.spec.Name)
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.mu.Unlock()
		return fmt.Errorf("start %s: %w", p.spec.Name, err)
	}
	defer logFile.Close() // the child has its own copy
	fmt.Fprintf(logFile, "---- start %s %s\n", p.spec.Name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.spec.Argv[0], p.spec.Argv[1:]...)
	cmd.Dir, cmd.Env = p.spec.Dir, p.spec.Env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		return fmt.Errorf("start %s: %w", p.spec.Name, err)
	}
	r := &run{cmd: cmd, done: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	p.run = r
	p.mu.Unlock()

	if p.spec.Ready == nil {
		return nil
	}
	if err := p.waitReady(r); err != nil {
		p.Kill()
		return fmt.Errorf("%s did not get ready: %w; log tail:\n%s", p.spec.Name, err, Tail(p.Log(), 30))
	}
	return nil
}

// waitReady polls Ready until it succeeds, the process exits or ReadyTimeout passes.
func (p *Process) waitReady(r *run) error {
	deadline := time.Now().Add(p.spec.ReadyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := p.spec.Ready(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s: %w", p.spec.ReadyTimeout, err)
		}
		select {
		case <-r.done:
			return fmt.Errorf("exited: %v", r.err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Running reports whether the process was started and not stopped by the test (it may
// have exited on its own: see Exited).
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.run != nil
}

// Pid is the process id of the running process, 0 when it is not running.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run == nil {
		return 0
	}
	return p.run.cmd.Process.Pid
}

// Exited says how a process that the test did not stop ended, or nil while it runs.
func (p *Process) Exited() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run == nil {
		return nil
	}
	select {
	case <-p.run.done:
		return fmt.Errorf("%s exited on its own: %v", p.spec.Name, p.run.err)
	default:
		return nil
	}
}

// Signal sends sig and waits up to timeout for the process to exit, then kills it. It
// returns the process's exit error (nil for status 0), or why it had to be killed.
func (p *Process) Signal(sig syscall.Signal, timeout time.Duration) error {
	p.mu.Lock()
	r := p.run
	p.run = nil
	p.mu.Unlock()
	if r == nil {
		return nil
	}
	p.mark(fmt.Sprintf("%s %s", sig, p.spec.Name))
	_ = r.cmd.Process.Signal(sig)
	select {
	case <-r.done:
		return r.err
	case <-time.After(timeout):
		_ = r.cmd.Process.Kill()
		<-r.done
		return fmt.Errorf("%s did not exit within %s of %s; killed it", p.spec.Name, timeout, sig)
	}
}

// Stop stops the process gracefully (SIGTERM), and kills it after StopTimeout.
func (p *Process) Stop() error { return p.Signal(syscall.SIGTERM, p.spec.StopTimeout) }

// Kill kills the process (SIGKILL) and waits until it is gone.
func (p *Process) Kill() { _ = p.Signal(syscall.SIGKILL, time.Minute) }

// Restart stops the process gracefully if it runs, and starts it again.
func (p *Process) Restart() error {
	if err := p.Stop(); err != nil && !isExit(err) {
		return err
	}
	return p.Start()
}

// isExit reports whether err is only a non-zero exit status, which a stop can cause.
func isExit(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}

// mark writes a line into the log, between the process's own lines.
func (p *Process) mark(what string) {
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "---- %s %s\n", what, time.Now().Format(time.RFC3339Nano))
}

// LogPath is the file that receives the process's output, across restarts.
func (p *Process) LogPath() string { return p.logPath }

// Log is all the process wrote so far, with a "---- start" or "---- <signal>" line
// before each start and stop.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
