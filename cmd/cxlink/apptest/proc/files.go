package proc

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// module is the module path of the repository, as go.mod names it.
const module = "github.com/cxlink/cxlink"

var root struct {
	once sync.Once
	dir  string
	err  error
}

// RepoPath is the absolute path of a file of this repository, given by its path from the
// module root (e.g. "deploy/prometheus/rules"), from a test of any package.
func RepoPath(t testing.TB, rel string) string {
	t.Helper()
	root.once.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			root.err = err
			return
		}
		for {
			if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module "+module+"\n")) {
				root.dir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				root.err = fmt.Errorf("no go.mod of %s in the directories above the test's", module)
				return
			}
			dir = parent
		}
	})
	if root.err != nil {
		t.Fatalf("proc: %v", root.err)
	}
	return filepath.Join(root.dir, filepath.FromSlash(rel))
}

// LookPath finds the first of names on PATH; if none is there, the test fails with how
// to install Debian's package pkg.
func LookPath(t testing.TB, pkg string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Fatalf("%s not found on PATH: install it with `apt-get install %s`, or run deploy/local/test.sh, which does", names[0], pkg)
	return ""
}

// HTTPReady is a Spec.Ready that wants 200 OK from url.
func HTTPReady(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}
