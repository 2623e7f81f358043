// Package chtest gives tests a real ClickHouse: a private clickhouse-server process on
// free loopback ports with all its files in the test's temp dir, or the server named by
// CXLINK_TEST_CLICKHOUSE_ADDR (with _USER and _PASSWORD), e.g. a current ClickHouse from
// docker-compose, so that the same tests check the current dialect. Tests that stop the
// server or need its second user start a private one whatever the environment says
// (StartPrivate). Import it from tests only.
package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest/proc"
	"github.com/cxlink/cxlink/sinks/clickhouse"
)

// Environment variables that point the tests at an existing server instead.
const (
	EnvAddr     = "CXLINK_TEST_CLICKHOUSE_ADDR"
	EnvUser     = "CXLINK_TEST_CLICKHOUSE_USER"
	EnvPassword = "CXLINK_TEST_CLICKHOUSE_PASSWORD"
)

const (
	// startTimeout bounds a start: 18.16 answers in about 0.2 s, a loaded CI machine
	// may take much longer.
	startTimeout = 30 * time.Second
	// stopTimeout is how long a stopped server may take to exit before it is killed.
	stopTimeout = 10 * time.Second
)

// Server is a ClickHouse server for tests. Its methods fail the test that started it.
type Server struct {
	t        testing.TB
	addr     string
	user     string
	password string

	// Private servers only: the server process, its files under dir, and files merged
	// into its users.xml (its users.d directory).
	p      *proc.Process
	dir    string
	usersD []string
}

// Start returns a running ClickHouse: the server at CXLINK_TEST_CLICKHOUSE_ADDR when that
// is set, else a private server (StartPrivate).
func Start(t testing.TB) *Server {
	t.Helper()
	addr := os.Getenv(EnvAddr)
	if addr == "" {
		return StartPrivate(t)
	}
	s := &Server{t: t, addr: addr, user: os.Getenv(EnvUser), password: os.Getenv(EnvPassword)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.ping(ctx); err != nil {
		t.Fatalf("chtest: %s=%s does not answer: %v", EnvAddr, addr, err)
	}
	return s
}

// StartPrivate starts a private server from the local binary, which is killed when the
// test ends (its log is shown if the test failed). A missing binary fails the test with
// how to install one.
func StartPrivate(t testing.TB) *Server {
	t.Helper()
	return startPrivate(t, nil)
}

// StartWithUsers starts a private server whose users.xml is merged with the given
// files, as a server merges its users.d directory (e.g. deploy/clickhouse/users.d): for
// tests of users and their rights. It never uses an external server.
func StartWithUsers(t testing.TB, usersD ...string) *Server {
	t.Helper()
	if len(usersD) == 0 {
		t.Fatal("chtest: StartWithUsers needs a users file")
	}
	return startPrivate(t, usersD)
}

func startPrivate(t testing.TB, usersD []string) *Server {
	t.Helper()
	argv, err := findBinary(debianBinary)
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	s := &Server{t: t, dir: t.TempDir(), user: "default", usersD: usersD}
	config := filepath.Join(s.dir, "config.xml")
	s.p = proc.New(t, proc.Spec{Name: "clickhouse-server", Dir: s.dir, Argv: append(argv, "--config-file="+config),
		Ready: s.ping, ReadyTimeout: startTimeout, StopTimeout: stopTimeout})
	// Free ports are picked by binding port 0 and closing it, so another process may
	// take one before the server binds it: then try again with new ports.
	for attempt := 1; ; attempt++ {
		if err = s.configure(t); err != nil {
			t.Fatalf("chtest: %v", err)
		}
		if err = s.p.Start(); err == nil {
			return s
		}
		if attempt == 3 {
			t.Fatalf("chtest: %v", err)
		}
		t.Logf("chtest: %v; trying other ports", err)
	}
}

// Addr is host:port of the server's native protocol.
func (s *Server) Addr() string { return s.addr }

// Stop stops the private server, keeping its ports and data for Start. An external
// server cannot be stopped: the test fails.
func (s *Server) Stop() {
	s.t.Helper()
	s.mustBePrivate("Stop")
	if err := s.p.Stop(); err != nil {
		s.t.Fatalf("chtest: clickhouse-server: %v", err)
	}
}

// Start starts the stopped private server again, with the same ports and data, and
// waits until it answers.
func (s *Server) Start() {
	s.t.Helper()
	s.mustBePrivate("Start")
	if err := s.p.Start(); err != nil {
		s.t.Fatalf("chtest: %v", err)
	}
}

// NewDatabase returns the name of a database no other test uses; it is not created
// (clickhouse.Client.Migrate creates it). On an external server it is dropped when the
// test ends, unless the test failed.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	if s.p == nil {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("chtest: keeping database %s for inspection", name)
				return
			}
			for _, db := range []string{name, name + "_private"} { // and its private database
				if err := s.exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
					t.Logf("chtest: drop database %s: %v", db, err)
				}
			}
		})
	}
	return name
}

// Config is the sink's configuration for database on this server, with the sink's
// defaults for everything else.
func (s *Server) Config(database string) clickhouse.Config {
	cfg := clickhouse.DefaultConfig()
	cfg.Addr, cfg.Database = s.addr, database
	if s.user != "" {
		cfg.User = s.user
	}
	cfg.Password = s.password
	return cfg
}

// Env is the environment that points cxlink at database on this server
// (CLICKHOUSE_ADDR, CLICKHOUSE_DATABASE, and the user and password when there are).
func (s *Server) Env(database string) map[string]string {
	e := map[string]string{"CLICKHOUSE_ADDR": s.addr, "CLICKHOUSE_DATABASE": database}
	if s.user != "" {
		e["CLICKHOUSE_USER"] = s.user
	}
	if s.password != "" {
		e["CLICKHOUSE_PASSWORD"] = s.password
	}
	return e
}

// Conn is a connection whose default database is database, as Grafana's ClickHouse
// datasource connects: the dashboards' queries name no database. It is closed when the
// test ends.
func (s *Server) Conn(t testing.TB, database string) ch.Conn {
	t.Helper()
	conn, err := ch.Open(&ch.Options{Addr: []string{s.addr}, Auth: ch.Auth{Database: database, Username: s.user, Password: s.password},
		DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func (s *Server) mustBePrivate(op string) {
	s.t.Helper()
	if s.p == nil {
		s.t.Fatalf("chtest: %s needs a private server (StartPrivate), not the one %s names (%s)", op, EnvAddr, s.addr)
	}
}

// debianBinary is where Debian's clickhouse-server package puts the server.
const debianBinary = "/usr/sbin/clickhouse-server"

// findBinary returns the command line that runs a ClickHouse server: the Debian
// package's, else clickhouse-server or the single clickhouse binary on PATH.
func findBinary(debian string) ([]string, error) {
	if _, err := os.Stat(debian); err == nil {
		return []string{debian}, nil
	}
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return []string{p}, nil
	}
	if p, err := exec.LookPath("clickhouse"); err == nil {
		return []string{p, "server"}, nil
	}
	return nil, fmt.Errorf("no ClickHouse server found (looked for %s, and clickhouse-server and clickhouse on PATH): "+
		"install it with `apt-get install clickhouse-server` or run `deploy/local/test.sh`, "+
		"or set %s to host:port of a running server", debian, EnvAddr)
}

// configure picks free ports and writes the server's configuration under s.dir: the
// repository's private-server template (deploy/clickhouse), and a second user.
func (s *Server) configure(t testing.TB) error {
	ports, err := proc.FreePorts(3)
	if err != nil {
		return err
	}
	if err := writeConfig(t, s.dir, ports); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.dir, "users.d", "secret.xml"), []byte(secretUserXML), 0o644); err != nil {
		return fmt.Errorf("write server users: %w", err)
	}
	for i, u := range s.usersD {
		if err := os.WriteFile(filepath.Join(s.dir, "users.d", fmt.Sprintf("%02d.xml", i)), []byte(u), 0o644); err != nil {
			return fmt.Errorf("write users.d: %w", err)
		}
	}
	s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	return nil
}

// writeConfig writes the repository's private-server template (deploy/clickhouse) under
// dir, filled in for dir and ports (native, HTTP, interserver), with the directories it
// names and an empty users.d and config.d beside it for additions.
func writeConfig(t testing.TB, dir string, ports []int) error {
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas", "users.d", "config.d"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("create server dir: %w", err)
		}
	}
	var escaped strings.Builder
	if err := xml.EscapeText(&escaped, []byte(dir)); err != nil {
		return fmt.Errorf("escape server dir: %w", err)
	}
	vars := map[string]string{"DIR": escaped.String(), "TCP_PORT": strconv.Itoa(ports[0]),
		"HTTP_PORT": strconv.Itoa(ports[1]), "INTERSERVER_PORT": strconv.Itoa(ports[2])}
	for _, name := range []string{"config.xml", "users.xml"} {
		b, err := os.ReadFile(proc.RepoPath(t, "deploy/clickhouse/"+name))
		if err != nil {
			return fmt.Errorf("server template: %w", err)
		}
		text, err := fill(string(b), vars)
		if err != nil {
			return fmt.Errorf("deploy/clickhouse/%s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return fmt.Errorf("write server config: %w", err)
		}
	}
	return nil
}

// fill replaces the template's ${NAME}s with vars, and refuses a name it has no value for.
func fill(template string, vars map[string]string) (string, error) {
	var missing []string
	text := os.Expand(template, func(name string) string {
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if missing != nil {
		return "", fmt.Errorf("no value for ${%s}", strings.Join(missing, "}, ${"))
	}
	return text, nil
}

func (s *Server) ping(ctx context.Context) error {
	conn, err := s.open()
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Ping(ctx)
}

func (s *Server) exec(ctx context.Context, q string) error {
	conn, err := s.open()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return conn.Exec(ctx, q)
}

func (s *Server) open() (ch.Conn, error) {
	return ch.Open(&ch.Options{
		Addr:        []string{s.addr},
		Auth:        ch.Auth{Username: s.user, Password: s.password},
		DialTimeout: time.Second,
	})
}

// A second user of private servers, for tests of password authentication.
const (
	SecretUser     = "cxlink_secret"
	SecretPassword = "chtest-0f3e9a-password"
)

// secretUserXML adds SecretUser with SecretPassword, from loopback.
const secretUserXML = `<?xml version="1.0"?>
<yandex>
    <users>
        <` + SecretUser + `>
            <password>` + SecretPassword + `</password>
            <networks>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </` + SecretUser + `>
    </users>
</yandex>
`
