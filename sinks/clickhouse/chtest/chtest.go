// Package chtest gives tests a real ClickHouse: a private clickhouse-server process on
// free loopback ports with all its files in the test's temp dir, or the server named by
// CXLINK_TEST_CLICKHOUSE_ADDR. Import it from tests only.
package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/caarlos0/env/v11"

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

// Server is a ClickHouse server for tests. Its methods fail the test that started it,
// so call them from that test's goroutine.
type Server struct {
	t        testing.TB
	addr     string
	user     string
	password string

	// Private servers only.
	argv    []string // binary and its arguments
	dir     string
	logPath string
	usersD  []string // files merged into users.xml (its users.d directory)

	mu   sync.Mutex
	proc *process // nil while stopped
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process exited
	err  error         // of Wait, set before done is closed
}

// Start returns a running ClickHouse: the server at CXLINK_TEST_CLICKHOUSE_ADDR when that
// is set, else a private server that t.Cleanup stops. A missing binary fails the test.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, nil)
}

// StartWithUsers starts a private server whose users.xml is merged with the given
// files, as a server merges its users.d directory (e.g. deploy/clickhouse/users.d): for
// tests of users and their rights. It never uses an external server.
func StartWithUsers(t testing.TB, usersD ...string) *Server {
	t.Helper()
	if len(usersD) == 0 {
		t.Fatal("chtest: StartWithUsers needs a users file")
	}
	return start(t, usersD)
}

func start(t testing.TB, usersD []string) *Server {
	t.Helper()
	if addr := os.Getenv(EnvAddr); addr != "" && usersD == nil {
		s := &Server{t: t, addr: addr, user: os.Getenv(EnvUser), password: os.Getenv(EnvPassword)}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.ping(ctx); err != nil {
			t.Fatalf("chtest: %s=%s does not answer: %v", EnvAddr, addr, err)
		}
		return s
	}
	argv, err := findBinary(debianBinary)
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	s := &Server{t: t, argv: argv, dir: t.TempDir(), user: "default", usersD: usersD}
	s.logPath = filepath.Join(s.dir, "clickhouse-server.log")
	t.Cleanup(func() {
		// The data is thrown away, so there is nothing to shut down gracefully.
		s.mu.Lock()
		s.killLocked()
		s.mu.Unlock()
		if t.Failed() {
			t.Logf("chtest: clickhouse-server log (%s), last lines:\n%s", s.logPath, s.logTail())
		}
	})
	// Free ports are picked by binding port 0 and closing it, so another process may
	// take one before the server binds it: then try again with new ports.
	for attempt := 1; ; attempt++ {
		if err = s.configure(); err != nil {
			t.Fatalf("chtest: %v", err)
		}
		if err = s.start(); err == nil {
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
	if err := s.stop(); err != nil {
		s.t.Fatalf("chtest: %v", err)
	}
}

// Start starts the stopped private server again, with the same ports and data, and
// waits until it answers.
func (s *Server) Start() {
	s.t.Helper()
	s.mustBePrivate("Start")
	if err := s.start(); err != nil {
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
	if s.argv == nil {
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
	var cfg clickhouse.Config
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: map[string]string{}}); err != nil {
		s.t.Fatalf("chtest: default clickhouse config: %v", err)
	}
	cfg.Addr, cfg.Database = s.addr, database
	if s.user != "" {
		cfg.User = s.user
	}
	cfg.Password = s.password
	return cfg
}

func (s *Server) mustBePrivate(op string) {
	s.t.Helper()
	if s.argv == nil {
		s.t.Fatalf("chtest: %s needs a private server, but %s=%s names an external one; unset it to run this test",
			op, EnvAddr, s.addr)
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

// configure picks free ports and writes the server's config under s.dir.
func (s *Server) configure() error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			return fmt.Errorf("create server dir: %w", err)
		}
	}
	var dir strings.Builder
	if err := xml.EscapeText(&dir, []byte(s.dir)); err != nil {
		return fmt.Errorf("escape server dir: %w", err)
	}
	config := fmt.Sprintf(configXML, ports[0], ports[1], ports[2], dir.String())
	if err := os.WriteFile(filepath.Join(s.dir, "config.xml"), []byte(config), 0o644); err != nil {
		return fmt.Errorf("write server config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "users.xml"), []byte(usersXML), 0o644); err != nil {
		return fmt.Errorf("write server users: %w", err)
	}
	if len(s.usersD) > 0 {
		if err := os.MkdirAll(filepath.Join(s.dir, "users.d"), 0o755); err != nil {
			return fmt.Errorf("create users.d: %w", err)
		}
	}
	for i, u := range s.usersD {
		if err := os.WriteFile(filepath.Join(s.dir, "users.d", fmt.Sprintf("%02d.xml", i)), []byte(u), 0o644); err != nil {
			return fmt.Errorf("write users.d: %w", err)
		}
	}
	s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	return nil
}

// start runs the server process and waits until it answers a ping.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("start: server is already running")
	}
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	defer logFile.Close() // the child has its own copy
	args := append(s.argv[1:len(s.argv):len(s.argv)], "--config-file="+filepath.Join(s.dir, "config.xml"))
	cmd := exec.Command(s.argv[0], args...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.argv[0], err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.proc = p

	if err := s.waitReady(p); err != nil {
		s.killLocked()
		return fmt.Errorf("clickhouse-server on %s did not start: %w; log tail:\n%s", s.addr, err, s.logTail())
	}
	return nil
}

// waitReady polls the server with a ping until it answers, exits or startTimeout passes.
func (s *Server) waitReady(p *process) error {
	deadline := time.Now().Add(startTimeout)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = s.ping(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("process exited: %v", p.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("no answer within %s: %w", startTimeout, err)
}

func (s *Server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		s.proc = nil
		return nil
	case <-time.After(stopTimeout):
		s.killLocked()
		return fmt.Errorf("clickhouse-server did not exit within %s of SIGTERM; killed it", stopTimeout)
	}
}

func (s *Server) killLocked() {
	if s.proc == nil {
		return
	}
	_ = s.proc.cmd.Process.Kill()
	<-s.proc.done
	s.proc = nil
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

// logTail is the end of the server's log.
func (s *Server) logTail() string {
	const max = 4 << 10
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var (
		ports []int
		lns   []net.Listener
	)
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// configXML is a minimal server config: loopback only, every file under one directory
// (%[4]s), logs on the console, which start sends to the log file.
const configXML = `<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <console>1</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>%[1]d</tcp_port>
    <http_port>%[2]d</http_port>
    <interserver_http_port>%[3]d</interserver_http_port>
    <path>%[4]s/data/</path>
    <tmp_path>%[4]s/tmp/</tmp_path>
    <user_files_path>%[4]s/user_files/</user_files_path>
    <format_schema_path>%[4]s/format_schemas/</format_schema_path>
    <users_config>%[4]s/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <max_concurrent_queries>100</max_concurrent_queries>
    <mark_cache_size>268435456</mark_cache_size>
</yandex>
`

// A second user of private servers, for tests of password authentication.
const (
	SecretUser     = "cxlink_secret"
	SecretPassword = "chtest-0f3e9a-password"
)

// usersXML lets the user default in from loopback without a password, and SecretUser
// with SecretPassword.
const usersXML = `<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <!-- Idle connections notice a shutdown within this many seconds (default
                 10), which keeps Stop fast while clients are connected. -->
            <poll_interval>1</poll_interval>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <` + SecretUser + `>
            <password>` + SecretPassword + `</password>
            <networks>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </` + SecretUser + `>
    </users>
    <quotas>
        <default></default>
    </quotas>
</yandex>
`
