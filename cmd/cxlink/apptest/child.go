package apptest

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest/proc"
)

// childEnv marks a process started by StartChild: the test binary runs cxlink's main.
const childEnv = "CXLINK_TEST_RUN_MAIN"

var mainSet bool

// Main is the TestMain of a package whose tests start cxlink as its own OS process: in a
// child started by NewChild it runs cxlink's main (passed in), else the tests.
//
//	func TestMain(m *testing.M) { apptest.Main(m, main) }
func Main(m *testing.M, main func()) {
	if os.Getenv(childEnv) == "1" {
		main()
		os.Exit(0)
	}
	mainSet = true
	os.Exit(m.Run())
}

// Child is a cxlink role running as its own OS process, so that a test can kill it -9:
// the test binary itself, run again as `cxlink args…` (see Main).
type Child struct {
	*proc.Process
}

// NewChild prepares `cxlink args…` as a child process with env added to the test's
// environment; Start starts it. Its log is in a file of its own (Log, LogPath), shown if
// the test fails; the process is killed when the test ends.
func NewChild(t testing.TB, name string, env map[string]string, args ...string) *Child {
	t.Helper()
	if !mainSet {
		t.Fatal("apptest: a child needs the test binary to run cxlink: add func TestMain(m *testing.M) { apptest.Main(m, main) }")
	}
	environ := append(os.Environ(), childEnv+"=1")
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		environ = append(environ, k+"="+env[k])
	}
	return &Child{proc.New(t, proc.Spec{Name: name, Argv: append([]string{os.Args[0]}, args...), Env: environ,
		StopTimeout: time.Minute})}
}

// StartChild is NewChild, started.
func StartChild(t testing.TB, name string, env map[string]string, args ...string) *Child {
	t.Helper()
	c := NewChild(t, name, env, args...)
	if err := c.Start(); err != nil {
		t.Fatalf("apptest: %v", err)
	}
	return c
}

var listeningRe = regexp.MustCompile(`msg="http listening" addr=(\S+)`)

// URL is the base URL of the HTTP listener the child's latest start logged, waiting up
// to a minute for it.
func (c *Child) URL(t testing.TB) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		log := c.Log()
		if i := strings.LastIndex(log, "---- start"); i >= 0 {
			log = log[i:]
		}
		if m := listeningRe.FindAllStringSubmatch(log, -1); len(m) > 0 {
			return "http://" + m[len(m)-1][1]
		}
		if err := c.Exited(); err != nil {
			t.Fatalf("apptest: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("apptest: %s logged no HTTP address within a minute", c.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
