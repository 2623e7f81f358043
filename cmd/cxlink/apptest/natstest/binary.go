package natstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest/proc"
)

// serverModule is the nats-server module; go.mod pins its version, which is also the
// version of the server package linked into this test binary (server.VERSION).
const serverModule = "github.com/nats-io/nats-server/v2"

var built struct {
	once sync.Once
	path string
	err  error
}

// Binary is the path of a nats-server binary of the version go.mod pins. The first call
// in a test binary builds it from the module cache with `go build` into the user's cache
// directory (e.g. ~/.cache/cxlink-test), where later test binaries find it; a failure
// ends the test with how to fix it.
func Binary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() { built.path, built.err = build(proc.RepoPath(t, ".")) })
	if built.err != nil {
		t.Fatalf("natstest: %v", built.err)
	}
	return built.path
}

// build builds nats-server into the cache unless it is there, from the module in dir.
func build(dir string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	cache = filepath.Join(cache, "cxlink-test")
	path := filepath.Join(cache, fmt.Sprintf("nats-server-v%s-%s-%s", server.VERSION, runtime.GOOS, runtime.GOARCH))
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("nats-server cache: %w", err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("build nats-server v%s: the go command is not on PATH: %w", server.VERSION, err)
	}
	// Build beside the final name and rename: test binaries of other packages may build
	// at the same time, or run the binary already there.
	tmp, err := os.CreateTemp(cache, ".nats-server-*")
	if err != nil {
		return "", fmt.Errorf("nats-server cache: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command(goBin, "build", "-o", tmp.Name(), serverModule)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build nats-server v%s (`go build %s` in %s): %v\n%s\n"+
			"It builds from the Go module cache: run `go mod download %s` with access to the Go module proxy, and try again",
			server.VERSION, serverModule, dir, err, out, serverModule)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("nats-server cache: %w", err)
	}
	return path, nil
}
