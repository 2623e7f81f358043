package proc

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// handedOut holds the ports given so far: tests run in parallel and restart processes on
// the ports they got, so no port is given twice in one test binary.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePorts returns n loopback ports that were free a moment ago and that no other caller
// in this test binary got. They lie below the kernel's ephemeral range, from which every
// outgoing connection on the machine takes its local port: a server restarted on its
// port (as the fault tests do) would otherwise find it taken by some client. Another
// process may still bind one first: a server that fails to bind should be started again
// on new ports.
func FreePorts(n int) ([]int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	lo, hi := portRange()
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			return nil, fmt.Errorf("find a free port: none of 1000 tried in %d–%d was free", lo, hi)
		}
		p := lo + rand.IntN(hi-lo)
		if handedOut.ports[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // in use
		}
		held = append(held, l)
		handedOut.ports[p] = true
		ports = append(ports, p)
	}
	return ports, nil
}

// portRange is where FreePorts picks: from 10000 up to the start of the ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range, 32768 by default on Linux).
func portRange() (lo, hi int) {
	lo, hi = 10000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if first, err := strconv.Atoi(f[0]); err == nil && first > lo+1000 {
				hi = first
			}
		}
	}
	return lo, hi
}

// FreePort is one port of FreePorts; a failure ends the test.
func FreePort(t testing.TB) int {
	t.Helper()
	ports, err := FreePorts(1)
	if err != nil {
		t.Fatalf("proc: %v", err)
	}
	return ports[0]
}

// FreeAddr is 127.0.0.1:FreePort.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}
