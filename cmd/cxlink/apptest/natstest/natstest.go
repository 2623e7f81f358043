// Package natstest runs a NATS JetStream cluster of real nats-server processes on
// loopback, for tests of what must survive a node's loss: N nodes routed to each other,
// each with its own store under the test's temp dir, that a test can kill, stop and
// restart (same store, same ports). The nats-server is the version go.mod pins, built
// once from the module cache. Import it from tests only.
//
//	c := natstest.StartCluster(t, 3)
//	nc := c.Connect(t)                      // to every node, reconnecting
//	... create an R3 stream, publish ...
//	c.Kill(c.StreamLeader(t, "ORDERS"))     // SIGKILL
//	... publishes and reads go on ...
//	c.Restart(i)                            // back with its store, caught up
//
// StartClusterWith adds a deployment's settings (authorization, JetStream sync) to every
// node's configuration.
package natstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest/proc"
)

// ClusterName is the name of every test cluster.
const ClusterName = "cxlink-test"

// readyTimeout bounds how long a node may take to be healthy: a restarted node first
// catches up with the others' streams.
const readyTimeout = time.Minute

// Cluster is a running NATS cluster. Its methods fail the test that started it.
type Cluster struct {
	t     testing.TB
	opts  Options
	nodes []*node
}

// Options of StartClusterWith: what a deployment's configuration adds to the nodes'.
type Options struct {
	// Config is added to every node's configuration file, e.g. an authorization block
	// (nats-server's syntax, of which JSON is a part).
	Config string
	// JetStream is added inside every node's jetstream block, e.g. "sync_interval: always".
	JetStream string
	// Client are the options every connection the cluster makes needs (StreamLeader,
	// and before the caller's own in Connect): the credentials Config asks for.
	Client []nats.Option
}

type node struct {
	name                   string
	client, route, monitor int
	dir                    string
	p                      *proc.Process
}

// StartCluster starts n nodes with JetStream, routed to each other on free loopback
// ports, and waits until every node is healthy (a meta leader is elected). When the test
// ends they are killed; the logs of every node are shown if it failed.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartClusterWith(t, n, Options{})
}

// StartClusterWith is StartCluster with opts added to every node's configuration.
func StartClusterWith(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest: a cluster of %d nodes", n)
	}
	bin := Binary(t)
	// Free ports are picked by binding port 0 and closing it, so another process may
	// take one before a node binds it: then try again with new ports.
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		c := &Cluster{t: t, opts: opts}
		if err = c.configure(bin, n); err != nil {
			t.Fatalf("natstest: %v", err)
		}
		if err = c.start(); err == nil {
			return c
		}
		for _, nd := range c.nodes {
			nd.p.Kill()
		}
		t.Logf("natstest: %v; trying other ports", err)
	}
	t.Fatalf("natstest: %v", err)
	return nil
}

// configure picks the ports and writes each node's configuration file.
func (c *Cluster) configure(bin string, n int) error {
	ports, err := proc.FreePorts(3 * n)
	if err != nil {
		return err
	}
	base := c.t.TempDir()
	for i := range n {
		c.nodes = append(c.nodes, &node{name: fmt.Sprintf("n%d", i), client: ports[3*i], route: ports[3*i+1],
			monitor: ports[3*i+2], dir: filepath.Join(base, fmt.Sprintf("n%d", i))})
	}
	for _, nd := range c.nodes {
		if err := os.MkdirAll(nd.dir, 0o755); err != nil {
			return err
		}
		conf := filepath.Join(nd.dir, "nats.conf")
		if err := os.WriteFile(conf, []byte(c.config(nd)), 0o644); err != nil {
			return err
		}
		nd.p = proc.New(c.t, proc.Spec{Name: "nats-" + nd.name, Dir: nd.dir, Argv: []string{bin, "--config", conf},
			StopTimeout: 30 * time.Second})
	}
	return nil
}

// config is a node's nats-server configuration.
func (c *Cluster) config(nd *node) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %q\nlisten: \"127.0.0.1:%d\"\nhttp: \"127.0.0.1:%d\"\n", nd.name, nd.client, nd.monitor)
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n%s\n}\n%s\n", filepath.Join(nd.dir, "jetstream"), c.opts.JetStream, c.opts.Config)
	if len(c.nodes) > 1 {
		var routes []string
		for _, o := range c.nodes {
			if o != nd {
				routes = append(routes, fmt.Sprintf("%q", fmt.Sprintf("nats-route://127.0.0.1:%d", o.route)))
			}
		}
		fmt.Fprintf(&b, "cluster {\n  name: %q\n  listen: \"127.0.0.1:%d\"\n  routes: [%s]\n}\n",
			ClusterName, nd.route, strings.Join(routes, ", "))
	}
	return b.String()
}

// start starts every node, then waits until all are healthy: a clustered node is
// healthy only once it found a meta leader, which needs a quorum of the others.
func (c *Cluster) start() error {
	for _, nd := range c.nodes {
		if err := nd.p.Start(); err != nil {
			return err
		}
	}
	for _, nd := range c.nodes {
		if err := c.waitHealthy(nd); err != nil {
			return err
		}
	}
	return c.waitPeersCurrent()
}

// waitPeersCurrent waits until the meta leader counts every other node as a current,
// online peer: each node being healthy is not enough, the leader may not have heard from
// a peer yet, and would then refuse to place a replicated stream ("peer offline").
func (c *Cluster) waitPeersCurrent() error {
	if len(c.nodes) == 1 {
		return nil
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		state := "no meta leader"
		for i := range c.nodes {
			var jsz struct {
				Meta *struct {
					Leader   string `json:"leader"`
					Replicas []struct {
						Name    string `json:"name"`
						Current bool   `json:"current"`
						Offline bool   `json:"offline"`
					} `json:"replicas"`
				} `json:"meta_cluster"`
			}
			if err := getJSON(c.MonitorURL(i)+"/jsz", &jsz); err != nil || jsz.Meta == nil || jsz.Meta.Leader != c.nodes[i].name {
				continue
			}
			current := 0
			for _, r := range jsz.Meta.Replicas {
				if r.Current && !r.Offline {
					current++
				}
			}
			if current == len(c.nodes)-1 {
				return nil
			}
			state = fmt.Sprintf("meta leader %s sees %d of %d peers current", c.nodes[i].name, current, len(c.nodes)-1)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not ready within %s: %s", readyTimeout, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitHealthy polls the node's /healthz, which answers 200 once its JetStream is current
// with the cluster (meta leader known, its streams and consumers caught up).
func (c *Cluster) waitHealthy(nd *node) error {
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", nd.monitor)
	ready := proc.HTTPReady(url)
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := ready(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if exited := nd.p.Exited(); exited != nil {
			return fmt.Errorf("node %s: %w; log tail:\n%s", nd.name, exited, proc.Tail(nd.p.Log(), 20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not healthy within %s: %w", nd.name, readyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Size is the number of nodes.
func (c *Cluster) Size() int { return len(c.nodes) }

// Name is the server name of node i ("n0", "n1", …), as NATS reports leaders.
func (c *Cluster) Name(i int) string { return c.node(i).name }

// ClientURL is node i's nats:// address.
func (c *Cluster) ClientURL(i int) string {
	return fmt.Sprintf("nats://127.0.0.1:%d", c.node(i).client)
}

// ClientURLs are every node's nats:// addresses, in node order.
func (c *Cluster) ClientURLs() []string {
	var urls []string
	for i := range c.nodes {
		urls = append(urls, c.ClientURL(i))
	}
	return urls
}

// URL is ClientURLs joined by commas: the form of NATS_URL and of nats.Connect.
func (c *Cluster) URL() string { return strings.Join(c.ClientURLs(), ",") }

// MonitorURL is node i's monitoring endpoint (http://…, with /healthz, /jsz, /varz).
func (c *Cluster) MonitorURL(i int) string {
	return fmt.Sprintf("http://127.0.0.1:%d", c.node(i).monitor)
}

// Dir is node i's directory: its configuration, log and JetStream store.
func (c *Cluster) Dir(i int) string { return c.node(i).dir }

// Log is everything node i wrote, across restarts.
func (c *Cluster) Log(i int) string { return c.node(i).p.Log() }

// Running reports whether node i runs (was not killed or stopped).
func (c *Cluster) Running(i int) bool { return c.node(i).p.Running() }

// Kill kills node i with SIGKILL: no goodbye to the cluster, nothing flushed.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	c.node(i).p.Kill()
}

// Stop stops node i gracefully (SIGTERM) and waits until it exited.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	if err := c.node(i).p.Stop(); err != nil {
		c.t.Fatalf("natstest: stop %s: %v", c.node(i).name, err)
	}
}

// Restart starts node i again, with the same ports and store, after stopping it
// gracefully if it runs; it returns once the node is healthy: back in the cluster with
// its streams caught up.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	nd := c.node(i)
	if nd.p.Running() {
		c.Stop(i)
	}
	if err := nd.p.Start(); err != nil {
		c.t.Fatalf("natstest: restart %s: %v", nd.name, err)
	}
	if err := c.waitHealthy(nd); err != nil {
		c.t.Fatalf("natstest: restart: %v", err)
	}
}

// Connect connects to the cluster (any node, reconnecting to another when one goes) and
// closes the connection when the test ends.
func (c *Cluster) Connect(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append(append([]nats.Option{nats.Name(t.Name()), nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond)}, c.opts.Client...), opts...)
	nc, err := nats.Connect(c.URL(), opts...)
	if err != nil {
		t.Fatalf("natstest: connect to %s: %v", c.URL(), err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// MetaLeader is the index of the node that leads the JetStream meta group, waiting (up
// to a minute) for an election to settle on a running node.
func (c *Cluster) MetaLeader(t testing.TB) int {
	t.Helper()
	return c.waitLeader(t, "meta leader", func() (string, error) {
		var last error
		for i, nd := range c.nodes {
			if !nd.p.Running() {
				continue
			}
			var jsz struct {
				Meta *struct {
					Leader string `json:"leader"`
				} `json:"meta_cluster"`
			}
			if err := getJSON(c.MonitorURL(i)+"/jsz", &jsz); err != nil {
				last = err
				continue
			}
			if jsz.Meta != nil && jsz.Meta.Leader != "" {
				return jsz.Meta.Leader, nil
			}
		}
		return "", last
	})
}

// StreamLeader is the index of the node that leads stream's group, waiting (up to a
// minute) for an election to settle on a running node.
func (c *Cluster) StreamLeader(t testing.TB, stream string) int {
	t.Helper()
	var js jetstream.JetStream
	return c.waitLeader(t, "leader of stream "+stream, func() (string, error) {
		if js == nil {
			nc, err := nats.Connect(c.URL(), append([]nats.Option{nats.MaxReconnects(-1)}, c.opts.Client...)...)
			if err != nil {
				return "", err
			}
			t.Cleanup(nc.Close)
			if js, err = jetstream.New(nc); err != nil {
				return "", err
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return "", err
		}
		info := s.CachedInfo()
		if info.Cluster == nil {
			return "", errors.New("no cluster information")
		}
		return info.Cluster.Leader, nil
	})
}

// waitLeader polls leader until it names a running node, and returns that node's index.
func (c *Cluster) waitLeader(t testing.TB, what string, leader func() (string, error)) int {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		name, err := leader()
		if err == nil {
			for i, nd := range c.nodes {
				if nd.name == name && nd.p.Running() {
					return i
				}
			}
			err = fmt.Errorf("%q is not a running node", name)
		}
		if time.Now().After(deadline) {
			t.Fatalf("natstest: no %s after a minute: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *Cluster) node(i int) *node {
	if i < 0 || i >= len(c.nodes) {
		c.t.Fatalf("natstest: no node %d in a cluster of %d", i, len(c.nodes))
	}
	return c.nodes[i]
}

func getJSON(url string, v any) error {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
