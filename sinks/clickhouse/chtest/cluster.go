package chtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest/proc"
	"github.com/cxlink/cxlink/sinks/clickhouse"
)

// ClusterName is the name of the clusters StartCluster starts, in the servers'
// remote_servers and in their clients' CLICKHOUSE_CLUSTER.
const ClusterName = "cxlink_test"

// zooKeeperJar is where Debian's libzookeeper-java puts the server; its manifest names the
// libraries it needs.
const zooKeeperJar = "/usr/share/java/zookeeper.jar"

// Cluster is a ClickHouse cluster for tests: one ZooKeeper and a private clickhouse-server
// per replica, all on loopback, with replicated shards (internal_replication) and the
// macros shard and replica. Everything is killed when the test ends.
type Cluster struct {
	t     testing.TB
	nodes []node
}

type node struct {
	shard, replica int // from 1
	srv            *Server
	p              *proc.Process
}

// StartCluster starts a cluster whose shard i (from 1) has replicas[i-1] replicas, e.g.
// StartCluster(t, 2, 1): two shards, the first with two replicas. A missing ClickHouse,
// ZooKeeper or Java fails the test with how to install it.
func StartCluster(t testing.TB, replicas ...int) *Cluster {
	t.Helper()
	argv, err := findBinary(debianBinary)
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	zk := startZooKeeper(t)

	c := &Cluster{t: t}
	var ports []int
	for s, n := range replicas {
		for r := range n {
			p, err := proc.FreePorts(3)
			if err != nil {
				t.Fatalf("chtest: %v", err)
			}
			ports = append(ports, p...)
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p[0]))
			c.nodes = append(c.nodes, node{shard: s + 1, replica: r + 1, srv: &Server{t: t, addr: addr, user: "default"}})
		}
	}
	for i := range c.nodes {
		n := &c.nodes[i]
		dir := t.TempDir()
		if err := writeNodeConfig(t, dir, c.nodes, i, ports[3*i:3*i+3], zk); err != nil {
			t.Fatalf("chtest: %v", err)
		}
		n.p = proc.New(t, proc.Spec{Name: fmt.Sprintf("clickhouse-s%dr%d", n.shard, n.replica), Dir: dir,
			Argv:  append(argv[:len(argv):len(argv)], "--config-file="+filepath.Join(dir, "config.xml")),
			Ready: n.srv.ping, ReadyTimeout: startTimeout, StopTimeout: stopTimeout})
	}
	for _, n := range c.nodes {
		if err := n.p.Start(); err != nil {
			t.Fatalf("chtest: %v", err)
		}
	}
	// A server answers before its ZooKeeper session is up.
	for _, n := range c.nodes {
		n.srv.waitZooKeeper()
	}
	return c
}

// Stop stops node i (SIGTERM), keeping its ports and data for Start.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	if err := c.nodes[i].p.Stop(); err != nil {
		c.t.Fatalf("chtest: %v", err)
	}
}

// Start starts the stopped node i again and waits until it answers and reaches ZooKeeper.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	if err := c.nodes[i].p.Start(); err != nil {
		c.t.Fatalf("chtest: %v", err)
	}
	c.nodes[i].srv.waitZooKeeper()
}

// Nodes is the number of servers.
func (c *Cluster) Nodes() int { return len(c.nodes) }

// Node says where node i (in shard order, then replica order) is.
func (c *Cluster) Node(i int) (addr string, shard, replica int) {
	n := c.nodes[i]
	return n.srv.addr, n.shard, n.replica
}

// Config is the sink's configuration for database on the cluster, through node i.
func (c *Cluster) Config(i int, database string) clickhouse.Config {
	cfg := c.nodes[i].srv.Config(database)
	cfg.Cluster = ClusterName
	return cfg
}

// NewDatabase returns the name of a database no other test uses (its tables' ZooKeeper
// paths hold the name); Migrate creates it.
func (c *Cluster) NewDatabase() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "t_" + hex.EncodeToString(b)
}

// SyncReplicas waits until every replica of every replicated table of database has
// fetched what the other replicas of its shard hold.
func (c *Cluster) SyncReplicas(database string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range c.nodes {
		conn, err := n.srv.open()
		if err != nil {
			c.t.Fatalf("chtest: %v", err)
		}
		var tables []string
		rows, err := conn.Query(ctx, "SELECT table FROM system.replicas WHERE database = ?", database)
		if err == nil {
			for rows.Next() {
				var name string
				if err = rows.Scan(&name); err != nil {
					break
				}
				tables = append(tables, name)
			}
			rows.Close()
		}
		for _, tbl := range tables {
			if err == nil {
				err = conn.Exec(ctx, "SYSTEM SYNC REPLICA "+database+"."+tbl)
			}
		}
		conn.Close()
		if err != nil {
			c.t.Fatalf("chtest: sync replicas of %s on %s: %v", database, n.srv.addr, err)
		}
	}
}

// waitZooKeeper waits until the server reaches ZooKeeper.
func (s *Server) waitZooKeeper() {
	s.t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		conn, err := s.open()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			var n uint64
			err = conn.QueryRow(ctx, "SELECT count() FROM system.zookeeper WHERE path = '/'").Scan(&n)
			cancel()
			conn.Close()
		}
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("chtest: clickhouse-server on %s does not reach ZooKeeper within %s: %v", s.addr, startTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startZooKeeper runs a standalone ZooKeeper and returns its host:port.
func startZooKeeper(t testing.TB) string {
	t.Helper()
	argv, err := findZooKeeper(zooKeeperJar)
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	dir := t.TempDir()
	port := proc.FreePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	proc.Start(t, proc.Spec{Name: "zookeeper", Dir: dir,
		Argv:  append(argv, strconv.Itoa(port), filepath.Join(dir, "data")),
		Ready: func(ctx context.Context) error { return zooKeeperOK(ctx, addr) }})
	return addr
}

// findZooKeeper returns the command line of a standalone ZooKeeper server from the jar
// of Debian's libzookeeper-java, without its port and data directory.
func findZooKeeper(jar string) ([]string, error) {
	java, err := exec.LookPath("java")
	if _, jerr := os.Stat(jar); err != nil || jerr != nil {
		return nil, fmt.Errorf("replicated tables need ZooKeeper, which needs %s and java on PATH: "+
			"install them with `apt-get install libzookeeper-java default-jre-headless`, or run deploy/local/test.sh, which does", jar)
	}
	return []string{java, "-Xmx128m", "-XX:+UseSerialGC",
		"-Dzookeeper.admin.enableServer=false", // its HTTP server would take port 8080
		"-Dzookeeper.4lw.commands.whitelist=ruok",
		"-cp", jar, "org.apache.zookeeper.server.ZooKeeperServerMain"}, nil
}

// zooKeeperOK asks ZooKeeper at addr whether it runs ("ruok"; it answers "imok").
func zooKeeperOK(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if _, err := conn.Write([]byte("ruok")); err != nil {
		return err
	}
	answer, _ := bufio.NewReader(conn).ReadString('\n')
	if answer != "imok" {
		return fmt.Errorf("zookeeper on %s answers %q to ruok", addr, answer)
	}
	return nil
}

// writeNodeConfig writes the configuration of node i of nodes under dir: a private
// server's (writeConfig), and the cluster's additions in config.d and users.d.
func writeNodeConfig(t testing.TB, dir string, nodes []node, i int, ports []int, zooKeeper string) error {
	if err := writeConfig(t, dir, ports); err != nil {
		return err
	}
	type replica struct{ Host, Port string }
	var shards [][]replica
	for _, n := range nodes {
		if n.shard > len(shards) {
			shards = append(shards, nil)
		}
		host, port, _ := net.SplitHostPort(n.srv.addr)
		shards[n.shard-1] = append(shards[n.shard-1], replica{host, port})
	}
	zkHost, zkPort, _ := net.SplitHostPort(zooKeeper)
	var config strings.Builder
	if err := nodeConfig.Execute(&config, map[string]any{
		"ZooKeeperHost": zkHost, "ZooKeeperPort": zkPort,
		"Shard": nodes[i].shard, "Replica": nodes[i].replica,
		"Cluster": ClusterName, "Shards": shards,
	}); err != nil {
		return fmt.Errorf("server config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.d", "cluster.xml"), []byte(config.String()), 0o644); err != nil {
		return fmt.Errorf("write server config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.d", "cluster.xml"), []byte(clusterUsersXML), 0o644); err != nil {
		return fmt.Errorf("write server users: %w", err)
	}
	return nil
}

// nodeConfig is what a cluster node adds to a private server's config (config.d): its
// ZooKeeper, macros and the cluster's servers.
var nodeConfig = template.Must(template.New("cluster.xml").Parse(`<?xml version="1.0"?>
<yandex>
    <!-- Replicas fetch parts from each other here. -->
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <zookeeper>
        <node>
            <host>{{.ZooKeeperHost}}</host>
            <port>{{.ZooKeeperPort}}</port>
        </node>
    </zookeeper>
    <distributed_ddl>
        <path>/clickhouse/task_queue/ddl</path>
    </distributed_ddl>
    <macros>
        <shard>{{.Shard}}</shard>
        <replica>s{{.Shard}}r{{.Replica}}</replica>
    </macros>
    <remote_servers>
        <{{.Cluster}}>{{range .Shards}}
            <shard>
                <internal_replication>true</internal_replication>{{range .}}
                <replica>
                    <host>{{.Host}}</host>
                    <port>{{.Port}}</port>
                </replica>{{end}}
            </shard>{{end}}
        </{{.Cluster}}>
    </remote_servers>
</yandex>
`))

// clusterUsersXML adds to the default profile (users.d) what docs/storage.md recommends
// for cxlink's user on a cluster.
const clusterUsersXML = `<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <load_balancing>in_order</load_balancing>
            <prefer_localhost_replica>0</prefer_localhost_replica>
        </default>
    </profiles>
</yandex>
`
