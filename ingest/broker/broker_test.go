package broker

import (
	"log/slog"
	"strings"
	"testing"
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
