//go:build unix

package broker

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockStore takes an exclusive lock on path, so that two servers never share a store
// (the nats-server store has no lock of its own). The kernel drops the lock when the
// process dies, even by kill -9.
func lockStore(path string) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock the store: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("the store %s is in use by another cxlink process (stop it, or reach its JetStream through CXLINK_EMBEDDED_NATS_LISTEN and NATS_URL)", path)
		}
		return nil, fmt.Errorf("lock the store: %w", err)
	}
	return func() { f.Close() }, nil
}
