//go:build !windows

package deploy

// The Kubernetes manifests, started: every pod of every workload in k8s/ runs as a real
// cxlink process with exactly the environment Kubernetes would give it (envFrom and env
// resolved from the ConfigMaps and Secrets, service links, the pod's host name, Secret
// volumes written to files under a temporary root and the paths that name them moved
// there), against a real NATS cluster configured from nats-values.yaml and a real
// ClickHouse. Only what cannot exist on a test machine is swapped: service addresses
// for the test servers', listen ports for free ones, and the secrets for test ones.
// Each pod must pass its probes and the migrate Job must complete, as `kubectl apply -k`
// would need them to; then an authenticated event goes in through ingest and comes out
// in ClickHouse, and the leases show every partition and singleton stage held.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/cxlink/cxlink/cmd/cxlink/app"
	"github.com/cxlink/cxlink/cmd/cxlink/apptest/natstest"
	"github.com/cxlink/cxlink/cmd/cxlink/apptest/proc"
	"github.com/cxlink/cxlink/ingest/auth"
	"github.com/cxlink/cxlink/ingest/stream"
	"github.com/cxlink/cxlink/processors/lease"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// runCxlinkEnv makes the test binary run cxlink itself: the pods' processes.
const runCxlinkEnv = "CXLINK_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runCxlinkEnv) == "1" {
		os.Exit(runCxlink())
	}
	os.Exit(m.Run())
}

// runCxlink is cxlink's main: the image's entrypoint.
func runCxlink() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := app.Run(ctx, os.Args[1:], app.Options{Environ: app.Environ(os.Environ()), Stdout: os.Stdout, Stderr: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cxlink:", err)
		return 1
	}
	return 0
}

const (
	// startTimeout bounds how long a pod may take to pass its probes, and the Job to
	// complete: a loaded CI machine starts eight race-instrumented processes at once.
	startTimeout = 3 * time.Minute
	// podIP stands for every pod's and service's address in the environment Kubernetes
	// gives (service links); nothing connects to it.
	podIP = "10.96.0.10"
)

func TestKubernetesRolesStart(t *testing.T) {
	m := loadManifests(t)
	if len(m.namespaces) != 1 {
		t.Fatalf("want one namespace, have %d", len(m.namespaces))
	}
	ctx := t.Context()

	// NATS as nats-values.yaml configures it, with a test key for cxlink's user.
	seed, natsOpts := natsFromValues(t)
	cluster := natstest.StartClusterWith(t, natsOpts.nodes, natsOpts.Options)
	ch := chtest.Start(t)
	database := ch.NewDatabase(t)
	token, tokenLine, err := auth.NewToken("k8s-test")
	if err != nil {
		t.Fatal(err)
	}
	swap := swaps{
		nats:     cluster.URL(),
		ch:       ch.Config(database),
		natsSeed: seed,
		authLine: tokenLine,
	}

	// Everything at once, as `kubectl apply -k` creates it.
	var pods []*testPod
	for _, d := range m.deployments {
		replicas := 1
		if d.Spec.Replicas != nil {
			replicas = int(*d.Spec.Replicas)
		}
		for i := range replicas {
			pods = append(pods, newTestPod(t, m, fmt.Sprintf("%s-%d", d.Name, i), d.Spec.Template.Spec, swap))
		}
	}
	var jobs []*testJob
	for _, j := range m.jobs {
		backoff := 6 // Kubernetes' default
		if j.Spec.BackoffLimit != nil {
			backoff = int(*j.Spec.BackoffLimit)
		}
		jobs = append(jobs, &testJob{testPod: newTestPod(t, m, j.Name, j.Spec.Template.Spec, swap), backoffLimit: backoff})
	}
	if t.Failed() {
		t.FailNow()
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() { j.complete(t) })
	}
	for _, p := range pods {
		wg.Go(func() { p.run(t) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// The stream and buckets are what the manifests define, whoever created them first.
	js, err := jetstream.New(cluster.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	env := pods[0].env
	if want := env["CXLINK_STREAM_REPLICAS"]; want != "" && strconv.Itoa(s.CachedInfo().Config.Replicas) != want {
		t.Errorf("stream %s has %d replicas, the manifests say %s", stream.Name, s.CachedInfo().Config.Replicas, want)
	}
	partitions, _ := strconv.Atoi(s.CachedInfo().Config.Metadata["cxlink_partitions"])
	if want := env["CXLINK_STREAM_PARTITIONS"]; want != "" && strconv.Itoa(partitions) != want {
		t.Errorf("stream %s has %d partitions, the manifests say %s", stream.Name, partitions, want)
	}
	t.Logf("stream %s: %d partitions, %d replicas", stream.Name, partitions, s.CachedInfo().Config.Replicas)

	// Every partition and both singleton stages held.
	kv, err := js.KeyValue(ctx, lease.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if ks, err := js.Stream(ctx, "KV_"+lease.Bucket); err != nil || strconv.Itoa(ks.CachedInfo().Config.Replicas) != cmp.Or(env["CXLINK_STREAM_REPLICAS"], "1") {
		t.Errorf("lease bucket: not replicated as the stream (%v)", err)
	}
	want := []string{"stage.analytics", "stage.drift"}
	for p := range partitions {
		want = append(want, fmt.Sprintf("partition.%d", p))
	}
	held := waitLeases(t, kv, want)
	t.Logf("leases: %v", held)

	// An event through ingest: refused without a token, accepted with it, stored once.
	var ingests []*testPod
	for _, p := range pods {
		if p.role() == "ingest" {
			ingests = append(ingests, p)
		}
	}
	if len(ingests) == 0 {
		t.Fatal("no ingest pod")
	}
	for i, in := range ingests {
		id := fmt.Sprintf("k8s-test-%d", i)
		body := fmt.Sprintf(`{"id":%q,"type":"survey_response","occurred_at":%q,"survey":"ces","score":6,"category":"billing"}`,
			id, time.Now().UTC().Format(time.RFC3339))
		if code := post(t, in.eventsURL(t), "", body); code != http.StatusUnauthorized {
			t.Errorf("%s: an event without a token answered %d, want 401", in.name, code)
		}
		if code := post(t, in.eventsURL(t), token, body); code != http.StatusAccepted {
			t.Fatalf("%s: an event with a token answered %d, want 202", in.name, code)
		}
	}
	db, err := clickhouse.Open(ctx, ch.Config(database), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var n uint64
		err := db.Conn().QueryRow(ctx, "SELECT count() FROM "+database+".survey_responses FINAL WHERE id LIKE 'k8s-test-%'").Scan(&n)
		if err == nil && n == uint64(len(ingests)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ClickHouse holds %d of the %d events sent (%v)", n, len(ingests), err)
		}
	}
}

// natsTest is the test cluster nats-values.yaml describes.
type natsTest struct {
	natstest.Options
	nodes int
}

// natsFromValues reads nats-values.yaml: the node count, the server configuration it
// merges (authorization) and the JetStream settings. An nkey user's public key is swapped
// for a test key's, whose seed it returns (empty without nkey users).
func natsFromValues(t *testing.T) (seed []byte, n natsTest) {
	t.Helper()
	b, err := os.ReadFile("k8s/nats-values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Config struct {
			Cluster struct {
				Enabled  bool `json:"enabled"`
				Replicas int  `json:"replicas"`
			} `json:"cluster"`
			JetStream struct {
				Merge map[string]any `json:"merge"`
			} `json:"jetstream"`
			Merge map[string]any `json:"merge"`
		} `json:"config"`
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	n.nodes = 1
	if values.Config.Cluster.Enabled {
		n.nodes = values.Config.Cluster.Replicas
	}
	merge := values.Config.Merge
	if authz, ok := merge["authorization"].(map[string]any); ok {
		users, _ := authz["users"].([]any)
		var nkeyUsers []map[string]any
		for _, u := range users {
			if u, ok := u.(map[string]any); ok && u["nkey"] != nil {
				nkeyUsers = append(nkeyUsers, u)
			}
		}
		switch len(nkeyUsers) {
		case 0:
		case 1:
			kp, err := nkeys.CreateUser()
			if err != nil {
				t.Fatal(err)
			}
			pub, _ := kp.PublicKey()
			seed, _ = kp.Seed()
			nkeyUsers[0]["nkey"] = pub
			n.Client = []nats.Option{nats.Nkey(pub, kp.Sign)}
		default:
			t.Fatalf("nats-values.yaml: %d nkey users; the test swaps the key of cxlink's, the only one", len(nkeyUsers))
		}
	}
	n.Config = natsConf(t, merge)
	n.JetStream = natsConf(t, values.Config.JetStream.Merge)
	return seed, n
}

// unquote is the chart's rule for values wrapped in << >>: written without quotes
// (units, variables).
var unquote = regexp.MustCompile(`"<< *(.*?) *>>"`)

// natsConf writes merged values as nats-server configuration, as the chart does.
func natsConf(t *testing.T, merge map[string]any) string {
	t.Helper()
	keys := slices.Sorted(maps.Keys(merge))
	var b strings.Builder
	for _, k := range keys {
		v, err := json.Marshal(merge[k])
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(v, []byte("<< $")) {
			t.Fatalf("nats-values.yaml: %s uses a variable (<< $… >>), which this test does not resolve", k)
		}
		fmt.Fprintf(&b, "%q: %s\n", k, unquote.ReplaceAll(v, []byte("$1")))
	}
	return b.String()
}

// swaps are what the test puts in place of what only a cluster has.
type swaps struct {
	nats     string            // NATS_URL
	ch       clickhouse.Config // CLICKHOUSE_*
	natsSeed []byte            // the content of NATS_NKEY_FILE
	authLine string            // added to CXLINK_AUTH_FILE
}

// testPod is one replica of a workload, prepared to run as a process.
type testPod struct {
	name  string
	spec  corev1.PodSpec
	c     corev1.Container
	root  string            // stands for the container's file system: mounts go below it
	env   map[string]string // exactly what the container gets (after the swaps)
	ports map[int32]int     // container port → free port on loopback
	p     *proc.Process
}

func (p *testPod) role() string { return strings.Join(p.c.Args, " ") }

// newTestPod resolves the pod's environment and files the way the kubelet does.
func newTestPod(t *testing.T, m *manifests, name string, spec corev1.PodSpec, swap swaps) *testPod {
	t.Helper()
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 {
		t.Errorf("%s: want one container and no init containers", name)
		return &testPod{name: name}
	}
	p := &testPod{name: name, spec: spec, c: spec.Containers[0], root: t.TempDir(), env: map[string]string{}, ports: map[int32]int{}}
	fail := func(format string, args ...any) { t.Errorf("%s: "+format, append([]any{name}, args...)...) }
	if len(p.c.Command) != 0 {
		fail("command %v replaces the image's entrypoint", p.c.Command)
	}

	// Files: Secret and ConfigMap volumes written out, emptyDirs made.
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	var mounts []string
	for _, vm := range p.c.VolumeMounts {
		v, ok := volumes[vm.Name]
		if !ok {
			fail("mounts volume %q, which the pod does not have", vm.Name)
			continue
		}
		dir := filepath.Join(p.root, vm.MountPath)
		mounts = append(mounts, vm.MountPath)
		var data map[string][]byte
		var items []corev1.KeyToPath
		switch {
		case v.Secret != nil:
			data, ok = m.secretData(v.Secret.SecretName)
			items = v.Secret.Items
		case v.ConfigMap != nil:
			data, ok = m.configMapData(v.ConfigMap.Name)
			items = v.ConfigMap.Items
		case v.EmptyDir != nil:
			data, ok = map[string][]byte{}, true
		default:
			fail("volume %s: only Secret, ConfigMap and emptyDir volumes are emulated", v.Name)
			continue
		}
		if !ok {
			fail("volume %s refers to a Secret or ConfigMap the manifests do not have", v.Name)
			continue
		}
		files := map[string][]byte{}
		if items == nil {
			for k, b := range data {
				files[k] = b
			}
		}
		for _, it := range items {
			b, ok := data[it.Key]
			if !ok {
				fail("volume %s: no key %s", v.Name, it.Key)
			}
			files[it.Path] = b
		}
		if vm.SubPath != "" {
			b, ok := files[vm.SubPath]
			if !ok {
				fail("mount %s: volume %s has no %s", vm.MountPath, v.Name, vm.SubPath)
			}
			write(t, dir, b)
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, b := range files {
			write(t, filepath.Join(dir, f), b)
		}
	}

	// The environment, in the kubelet's order: service links, envFrom, env.
	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		for _, s := range m.services {
			prefix := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
			for i, sp := range s.Spec.Ports {
				if i == 0 {
					p.env[prefix+"_SERVICE_HOST"] = podIP
					p.env[prefix+"_SERVICE_PORT"] = strconv.Itoa(int(sp.Port))
					p.env[prefix+"_PORT"] = fmt.Sprintf("tcp://%s:%d", podIP, sp.Port)
				}
				if sp.Name != "" {
					p.env[prefix+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(sp.Name, "-", "_"))] = strconv.Itoa(int(sp.Port))
				}
				pp := fmt.Sprintf("%s_PORT_%d_TCP", prefix, sp.Port)
				p.env[pp] = fmt.Sprintf("tcp://%s:%d", podIP, sp.Port)
				p.env[pp+"_PROTO"], p.env[pp+"_PORT"], p.env[pp+"_ADDR"] = "tcp", strconv.Itoa(int(sp.Port)), podIP
			}
		}
		p.env["KUBERNETES_SERVICE_HOST"], p.env["KUBERNETES_SERVICE_PORT"] = podIP, "443"
	}
	p.env["HOSTNAME"] = name
	for _, from := range p.c.EnvFrom {
		var data map[string][]byte
		var ok bool
		switch {
		case from.ConfigMapRef != nil:
			data, ok = m.configMapData(from.ConfigMapRef.Name)
		case from.SecretRef != nil:
			data, ok = m.secretData(from.SecretRef.Name)
		}
		if !ok {
			fail("envFrom %+v refers to nothing in the manifests", from)
			continue
		}
		for k, v := range data {
			p.env[from.Prefix+k] = string(v)
		}
	}
	for _, e := range p.c.Env {
		switch vf := e.ValueFrom; {
		case vf == nil:
			p.env[e.Name] = expand(e.Value, p.env)
		case vf.FieldRef != nil && vf.FieldRef.FieldPath == "metadata.name":
			p.env[e.Name] = name
		case vf.FieldRef != nil && vf.FieldRef.FieldPath == "metadata.namespace":
			p.env[e.Name] = m.namespaces[0].Name
		case vf.SecretKeyRef != nil || vf.ConfigMapKeyRef != nil:
			data, ok := map[string][]byte(nil), false
			key := ""
			if vf.SecretKeyRef != nil {
				data, ok = m.secretData(vf.SecretKeyRef.Name)
				key = vf.SecretKeyRef.Key
			} else {
				data, ok = m.configMapData(vf.ConfigMapKeyRef.Name)
				key = vf.ConfigMapKeyRef.Key
			}
			b, found := data[key]
			if !ok || !found {
				fail("env %s refers to %s, which the manifests do not have", e.Name, key)
			}
			p.env[e.Name] = string(b)
		default:
			fail("env %s: its source is not emulated", e.Name)
		}
	}

	// Paths into mounted volumes point below the pod's root; a file variable must name a
	// file that a volume provides.
	for k, v := range p.env {
		for _, mp := range mounts {
			if v == mp || strings.HasPrefix(v, strings.TrimSuffix(mp, "/")+"/") {
				p.env[k] = filepath.Join(p.root, v)
			}
		}
		if strings.HasSuffix(k, "_FILE") && v != "" && !p.inside(p.env[k]) {
			fail("%s=%s: no volume provides that file", k, v)
			delete(p.env, k) // and the swaps below write nothing outside the pod's root
		}
	}

	// The swaps: test servers, free ports, test secrets.
	if p.env["NATS_URL"] == "" {
		fail("no NATS_URL")
	}
	p.env["NATS_URL"] = swap.nats
	p.env["CLICKHOUSE_ADDR"], p.env["CLICKHOUSE_DATABASE"] = swap.ch.Addr, swap.ch.Database
	p.env["CLICKHOUSE_USER"], p.env["CLICKHOUSE_PASSWORD"] = swap.ch.User, swap.ch.Password
	if f := p.env["NATS_NKEY_FILE"]; f != "" {
		if swap.natsSeed == nil {
			fail("NATS_NKEY_FILE is set, but nats-values.yaml has no nkey user")
		}
		write(t, f, swap.natsSeed)
	}
	if f := p.env["CXLINK_AUTH_FILE"]; f != "" {
		b, _ := os.ReadFile(f)
		write(t, f, append(b, []byte("\n"+swap.authLine+"\n")...))
	}
	for _, cp := range p.c.Ports {
		p.ports[cp.ContainerPort] = proc.FreePort(t)
	}
	for _, k := range []string{"CXLINK_HTTP_ADDR", "CXLINK_ADMIN_ADDR"} {
		addr := p.env[k]
		if addr == "" || len(p.c.Ports) == 0 { // a pod without ports serves nothing (the Job)
			continue
		}
		host, port, err := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(port)
		free, declared := p.ports[int32(n)]
		if err != nil || !declared {
			fail("%s=%s listens on no port the container declares (%v)", k, addr, p.c.Ports)
			continue
		}
		p.env[k] = net.JoinHostPort(host, strconv.Itoa(free))
	}
	return p
}

// inside reports whether path is a file of the pod's volumes.
func (p *testPod) inside(path string) bool {
	if !strings.HasPrefix(path, p.root+string(filepath.Separator)) {
		return false
	}
	_, err := os.Stat(path)
	return err == nil
}

// expand replaces $(VAR) with VAR's value, as Kubernetes does in env values.
func expand(s string, env map[string]string) string {
	return regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).ReplaceAllStringFunc(s, func(ref string) string {
		if v, ok := env[ref[2:len(ref)-1]]; ok {
			return v
		}
		return ref
	})
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// environ is the process environment: exactly the pod's, and the switch that makes the
// test binary run cxlink.
func (p *testPod) environ() []string {
	out := []string{runCxlinkEnv + "=1"}
	for _, k := range slices.Sorted(maps.Keys(p.env)) {
		out = append(out, k+"="+p.env[k])
	}
	return out
}

func (p *testPod) process(t *testing.T) *proc.Process {
	return proc.New(t, proc.Spec{Name: p.name, Dir: p.root, Argv: append([]string{os.Args[0]}, p.c.Args...),
		Env: p.environ(), StopTimeout: time.Minute})
}

// maxRestarts is how often a pod's container may exit and be started again, as the
// kubelet does (restartPolicy Always, with a shorter back-off), before the test gives
// up: a role that cannot start with its configuration exits every time.
const maxRestarts = 4

// run starts the pod and waits until every probe it has answers 200.
func (p *testPod) run(t *testing.T) {
	p.p = p.process(t)
	var exits []string
	for restart := 0; ; restart++ {
		if err := p.p.Start(); err != nil {
			t.Errorf("%s: %v", p.name, err)
			return
		}
		err := p.probe(t)
		if err == nil {
			break
		}
		if p.p.Exited() == nil || restart == maxRestarts {
			t.Errorf("%s: %v\n%s", p.name, err, proc.Tail(p.p.Log(), 15))
			return
		}
		exits = append(exits, lastLine(p.p.Log()))
		p.p.Kill()
		time.Sleep(time.Duration(1<<restart) * time.Second)
	}
	if len(exits) > 0 {
		t.Logf("%s (%s): probes pass after %d restarts; it exited with: %s", p.name, p.role(), len(exits), strings.Join(exits, "; "))
		return
	}
	t.Logf("%s (%s): probes pass", p.name, p.role())
}

// probe waits until each of the pod's probes answers 200, in the kubelet's order.
func (p *testPod) probe(t *testing.T) error {
	for _, pr := range []struct {
		kind  string
		probe *corev1.Probe
	}{{"startup", p.c.StartupProbe}, {"readiness", p.c.ReadinessProbe}, {"liveness", p.c.LivenessProbe}} {
		if pr.probe == nil {
			continue
		}
		if pr.probe.HTTPGet == nil {
			return fmt.Errorf("the %s probe is not an HTTP GET", pr.kind)
		}
		url := fmt.Sprintf("http://127.0.0.1:%d%s", p.port(t, pr.probe.HTTPGet.Port), pr.probe.HTTPGet.Path)
		if err := p.wait(proc.HTTPReady(url)); err != nil {
			return fmt.Errorf("%s probe %s: %w", pr.kind, pr.probe.HTTPGet.Path, err)
		}
	}
	return nil
}

// lastLine is the last line of a log that is not a marker of the test's.
func lastLine(log string) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if !strings.HasPrefix(lines[i], "---- ") {
			return lines[i]
		}
	}
	return ""
}

// wait polls check until it succeeds, the process exits, or startTimeout passes.
func (p *testPod) wait(check func(context.Context) error) error {
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := check(ctx)
		cancel()
		switch {
		case err == nil:
			return nil
		case p.p.Exited() != nil:
			return p.p.Exited()
		case time.Now().After(deadline):
			return fmt.Errorf("not within %s: %w", startTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// port is the loopback port of a probe's port (a number or a container port's name).
func (p *testPod) port(t *testing.T, port intstr.IntOrString) int {
	for _, cp := range p.c.Ports {
		if (port.Type == intstr.String && cp.Name == port.StrVal) || (port.Type == intstr.Int && cp.ContainerPort == port.IntVal) {
			return p.ports[cp.ContainerPort]
		}
	}
	t.Errorf("%s: probe port %s is not a container port", p.name, port.String())
	return 0
}

// eventsURL is where the pod serves POST /v1/events.
func (p *testPod) eventsURL(t *testing.T) string {
	_, port, _ := net.SplitHostPort(p.env["CXLINK_HTTP_ADDR"])
	if port == "" {
		t.Fatalf("%s: no CXLINK_HTTP_ADDR", p.name)
	}
	return "http://127.0.0.1:" + port + "/v1/events"
}

// testJob is a Job's pod: run until it succeeds, retried as the Job's backoff limit
// allows.
type testJob struct {
	*testPod
	backoffLimit int
}

func (j *testJob) complete(t *testing.T) {
	if j.spec.RestartPolicy != corev1.RestartPolicyOnFailure && j.spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("%s: restartPolicy %q", j.name, j.spec.RestartPolicy)
	}
	var errs []error
	for attempt := 0; attempt <= j.backoffLimit; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		cmd := exec.CommandContext(ctx, os.Args[0], j.c.Args...)
		cmd.Env, cmd.Dir = j.environ(), j.root
		out, err := cmd.CombinedOutput()
		cancel()
		if err == nil {
			t.Logf("%s: completed (attempt %d):\n%s", j.name, attempt+1, proc.Tail(string(out), 20))
			return
		}
		errs = append(errs, fmt.Errorf("attempt %d: %w\n%s", attempt+1, err, proc.Tail(string(out), 10)))
		time.Sleep(time.Duration(attempt+1) * time.Second)
	}
	t.Errorf("%s: did not complete within its backoff limit of %d:\n%v", j.name, j.backoffLimit, errors.Join(errs...))
}

// waitLeases waits until every key of want is held, and returns the holders.
func waitLeases(t *testing.T, kv jetstream.KeyValue, want []string) map[string]string {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		held := map[string]string{}
		var missing []string
		for _, k := range want {
			e, err := kv.Get(t.Context(), k)
			if err != nil {
				missing = append(missing, k)
				continue
			}
			held[k] = string(e.Value())
		}
		if len(missing) == 0 {
			return held
		}
		if time.Now().After(deadline) {
			sort.Strings(missing)
			t.Fatalf("leases not held after a minute: %v", missing)
		}
	}
}

func post(t *testing.T, url, token, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
