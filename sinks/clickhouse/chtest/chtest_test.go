package chtest

import (
	"context"
	"strings"
	"testing"
)

func TestFindBinaryMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := findBinary("/nonexistent/clickhouse-server")
	if err == nil {
		t.Fatal("found a server in an empty PATH")
	}
	for _, want := range []string{"apt-get install clickhouse-server", "deploy/local/test.sh", EnvAddr} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message does not say %q: %v", want, err)
		}
	}
}

func TestStopStartKeepsAddressAndData(t *testing.T) {
	srv := StartPrivate(t)
	addr := srv.Addr()
	db := srv.NewDatabase(t)
	if db == srv.NewDatabase(t) || !identifier(db) {
		t.Fatalf("NewDatabase returned %q twice or an invalid name", db)
	}
	mustExec(t, srv, "CREATE DATABASE "+db)
	srv.Stop()
	if err := srv.ping(context.Background()); err == nil {
		t.Fatal("stopped server answers")
	}
	srv.Start()
	if srv.Addr() != addr {
		t.Errorf("address changed from %s to %s", addr, srv.Addr())
	}
	// The database created before the stop is still there.
	if err := srv.exec(context.Background(), "CREATE DATABASE "+db); err == nil {
		t.Error("database did not survive the restart")
	}
}

func TestExternalServer(t *testing.T) {
	private := StartPrivate(t)
	t.Setenv(EnvAddr, private.Addr())
	t.Setenv(EnvUser, "")
	t.Setenv(EnvPassword, "")
	ext := Start(t)
	if ext.Addr() != private.Addr() {
		t.Fatalf("external server at %s, want %s", ext.Addr(), private.Addr())
	}
	cfg := ext.Config("some_db")
	if cfg.Addr != private.Addr() || cfg.Database != "some_db" || cfg.User != "default" || cfg.InsertTimeout == 0 {
		t.Errorf("config = %+v", cfg)
	}
	var db string
	t.Run("uses", func(t *testing.T) {
		db = ext.NewDatabase(t)
		mustExec(t, ext, "CREATE DATABASE "+db)
	})
	// The subtest's cleanup dropped its database.
	if err := ext.exec(context.Background(), "CREATE DATABASE "+db); err != nil {
		t.Errorf("database %s was not dropped: %v", db, err)
	}
}

func mustExec(t *testing.T, s *Server, q string) {
	t.Helper()
	if err := s.exec(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func identifier(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}
