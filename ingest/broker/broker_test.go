package broker

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// Two servers never share a store; once the first is gone, the store opens again.
func TestStoreIsLocked(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	s, err := Start(Config{DataDir: dir}, logger)
	if err != nil {
		t.Fatal(err)
	}
	if s2, err := Start(Config{DataDir: dir}, logger); err == nil {
		s2.Shutdown()
		s.Shutdown()
		t.Fatal("a second server opened a store in use")
	} else if !strings.Contains(err.Error(), "in use by another cxlink process") {
		t.Errorf("error does not say why: %v", err)
	}
	s.Shutdown()
	s, err = Start(Config{DataDir: dir}, logger)
	if err != nil {
		t.Fatalf("after shutdown: %v", err)
	}
	s.Shutdown()
}

func TestSyncPolicy(t *testing.T) {
	for _, ok := range []string{"", "always", "1s", "2m"} {
		if err := (Config{DataDir: "d", Sync: ok}).Validate(); err != nil {
			t.Errorf("Sync %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"never", "0s", "2h", "-1s"} {
		if err := (Config{DataDir: "d", Sync: bad}).Validate(); err == nil || !strings.Contains(err.Error(), "CXLINK_NATS_SYNC") {
			t.Errorf("Sync %q: %v", bad, err)
		}
	}
	for _, policy := range []string{"always", "1s"} {
		s, err := Start(Config{DataDir: t.TempDir(), Sync: policy}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		opts := s.ns.JetStreamConfig()
		s.Shutdown()
		if opts == nil || opts.SyncAlways != (policy == "always") || (policy == "1s" && opts.SyncInterval != time.Second) {
			t.Errorf("Sync %q: server runs with %+v", policy, opts)
		}
	}
}

// With a user and password, the listener refuses clients without them; in-process
// clients get them from Connect.
func TestListenerRequiresCredentials(t *testing.T) {
	s, err := Start(Config{DataDir: t.TempDir(), Listen: "127.0.0.1:-1", User: "cxlink", Password: "embedded-secret"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if nc, err := nats.Connect(s.ClientURL()); err == nil {
		nc.Close()
		t.Fatal("a client without credentials connected")
	}
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("cxlink", "embedded-secret"))
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	nc, err = s.Connect()
	if err != nil {
		t.Fatalf("in-process: %v", err)
	}
	nc.Close()
}

// A listener that other hosts can reach needs credentials; on loopback it may go
// without, and with a password its clients must present it.
func TestExposedListenerRequiresAuth(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	if s, err := Start(Config{DataDir: t.TempDir(), Listen: "0.0.0.0:-1"}, logger); err == nil {
		s.Shutdown()
		t.Fatal("an exposed listener without credentials started")
	} else if !strings.Contains(err.Error(), "NATS_USER") {
		t.Errorf("the error does not say what to set: %v", err)
	}
	s, err := Start(Config{DataDir: t.TempDir(), Listen: "0.0.0.0:-1", User: "cxlink", Password: "a-long-password"}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if nc, err := nats.Connect(s.ClientURL(), nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a client without the password connected")
	}
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("cxlink", "a-long-password"))
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	lo, err := Start(Config{DataDir: t.TempDir(), Listen: "127.0.0.1:-1"}, logger)
	if err != nil {
		t.Fatalf("loopback without credentials: %v", err)
	}
	lo.Shutdown()
}
