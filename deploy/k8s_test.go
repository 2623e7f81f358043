package deploy

// The Kubernetes manifests in k8s/, validated offline: every object decoded strictly into
// its k8s.io/api type (an unknown or misspelt field fails), then checked the way a
// cluster would find out too late: probes on /healthz and /readyz, resources, env from
// the ConfigMap and Secrets that exist, selectors that match, replicas and standbys for
// every role, and a configuration that cxlink itself accepts. k8s_start_test.go then
// starts every pod for real.

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/cxlink/cxlink/cmd/cxlink/app"
)

type manifests struct {
	deployments []appsv1.Deployment
	services    []corev1.Service
	configMaps  []corev1.ConfigMap
	secrets     []corev1.Secret
	jobs        []batchv1.Job
	pdbs        []policyv1.PodDisruptionBudget
	hpas        []autoscalingv2.HorizontalPodAutoscaler
	namespaces  []corev1.Namespace
	files       []string
}

// decodeStrict decodes one document into the type of its kind, refusing unknown fields.
func (m *manifests) decodeStrict(t *testing.T, file string, doc []byte) {
	t.Helper()
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var target any
	switch meta.APIVersion + " " + meta.Kind {
	case "apps/v1 Deployment":
		target = &appsv1.Deployment{}
	case "v1 Service":
		target = &corev1.Service{}
	case "v1 ConfigMap":
		target = &corev1.ConfigMap{}
	case "v1 Secret":
		target = &corev1.Secret{}
	case "batch/v1 Job":
		target = &batchv1.Job{}
	case "policy/v1 PodDisruptionBudget":
		target = &policyv1.PodDisruptionBudget{}
	case "autoscaling/v2 HorizontalPodAutoscaler":
		target = &autoscalingv2.HorizontalPodAutoscaler{}
	case "v1 Namespace":
		target = &corev1.Namespace{}
	default:
		t.Fatalf("%s: unexpected %s %s", file, meta.APIVersion, meta.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, target); err != nil {
		t.Fatalf("%s: %s: %v", file, meta.Kind, err)
	}
	switch o := target.(type) {
	case *appsv1.Deployment:
		m.deployments = append(m.deployments, *o)
	case *corev1.Service:
		m.services = append(m.services, *o)
	case *corev1.ConfigMap:
		m.configMaps = append(m.configMaps, *o)
	case *corev1.Secret:
		m.secrets = append(m.secrets, *o)
	case *batchv1.Job:
		m.jobs = append(m.jobs, *o)
	case *policyv1.PodDisruptionBudget:
		m.pdbs = append(m.pdbs, *o)
	case *autoscalingv2.HorizontalPodAutoscaler:
		m.hpas = append(m.hpas, *o)
	case *corev1.Namespace:
		m.namespaces = append(m.namespaces, *o)
	}
}

// secretData is the content of a Secret of the manifests: data and stringData.
func (m *manifests) secretData(name string) (map[string][]byte, bool) {
	for _, s := range m.secrets {
		if s.Name == name {
			out := map[string][]byte{}
			maps.Copy(out, s.Data)
			for k, v := range s.StringData {
				out[k] = []byte(v)
			}
			return out, true
		}
	}
	return nil, false
}

// configMapData is the content of a ConfigMap of the manifests.
func (m *manifests) configMapData(name string) (map[string][]byte, bool) {
	for _, c := range m.configMaps {
		if c.Name == name {
			out := map[string][]byte{}
			maps.Copy(out, c.BinaryData)
			for k, v := range c.Data {
				out[k] = []byte(v)
			}
			return out, true
		}
	}
	return nil, false
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	var kust struct {
		Resources []string `json:"resources"`
		Namespace string   `json:"namespace"`
	}
	b, err := os.ReadFile("k8s/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &kust); err != nil {
		t.Fatal(err)
	}
	m := &manifests{files: kust.Resources}
	for _, f := range kust.Resources {
		b, err := os.ReadFile(filepath.Join("k8s", f))
		if err != nil {
			t.Fatalf("kustomization.yaml lists %s: %v", f, err)
		}
		for _, doc := range bytes.Split(b, []byte("\n---\n")) {
			if len(bytes.TrimSpace(stripComments(doc))) > 0 {
				m.decodeStrict(t, f, doc)
			}
		}
	}
	// Every manifest file is applied (the Helm values and the operator's resource are
	// installed on their own, see the README).
	all, _ := filepath.Glob("k8s/*.yaml")
	for _, f := range all {
		base := filepath.Base(f)
		if base != "kustomization.yaml" && base != "nats-values.yaml" && base != "clickhouse.yaml" && !slices.Contains(kust.Resources, base) {
			t.Errorf("k8s/%s is not in kustomization.yaml", base)
		}
	}
	return m
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(append(out, l...), '\n')
		}
	}
	return out
}

func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	if len(m.configMaps) != 1 || len(m.jobs) != 1 {
		t.Fatalf("want one ConfigMap and the migrate Job: %d, %d", len(m.configMaps), len(m.jobs))
	}
	cm := m.configMaps[0]

	// One Deployment per role; the stateful ones with a standby.
	roles := map[string][]appsv1.Deployment{}
	for _, d := range m.deployments {
		role := d.Spec.Template.Labels["app.kubernetes.io/component"]
		roles[role] = append(roles[role], d)
	}
	for _, role := range []string{"ingest", "process", "drift"} {
		if len(roles[role]) != 1 {
			t.Errorf("want one %s Deployment, have %d", role, len(roles[role]))
		}
	}
	if len(roles) != 3 {
		t.Errorf("deployments by role: %v", slices.Sorted(maps.Keys(roles)))
	}

	type podSpec struct {
		name string
		spec corev1.PodSpec
	}
	pods := []podSpec{{"job/" + m.jobs[0].Name, m.jobs[0].Spec.Template.Spec}}
	for _, d := range m.deployments {
		pods = append(pods, podSpec{"deployment/" + d.Name, d.Spec.Template.Spec})
		if !matches(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			t.Errorf("%s: selector %v does not match its pods %v", d.Name, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			for probe, want := range map[string]*corev1.Probe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
				if want == nil || want.HTTPGet == nil || want.HTTPGet.Path != probe {
					t.Errorf("%s/%s: no HTTP probe on %s", d.Name, c.Name, probe)
					continue
				}
				if port := want.HTTPGet.Port.String(); !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == port || strconv.Itoa(int(p.ContainerPort)) == port }) {
					t.Errorf("%s/%s: probe port %s is not a container port", d.Name, c.Name, port)
				}
			}
		}
	}
	envSecrets := map[string]bool{}
	for _, p := range pods {
		if sc := p.spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("%s: not runAsNonRoot", p.name)
		}
		for _, c := range p.spec.Containers {
			r := c.Resources
			for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := r.Requests[res]; !ok {
					t.Errorf("%s/%s: no %s request", p.name, c.Name, res)
				}
			}
			if _, ok := r.Limits[corev1.ResourceMemory]; !ok {
				t.Errorf("%s/%s: no memory limit", p.name, c.Name)
			}
			if c.Image == "" || len(c.Args) != 1 {
				t.Errorf("%s/%s: image %q, args %v", p.name, c.Name, c.Image, c.Args)
			}
			if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s/%s: root file system not read-only", p.name, c.Name)
			}
			// Configuration from the ConfigMap and Secrets that exist, and nowhere else.
			env := map[string]string{}
			var cmRef bool
			for _, e := range c.EnvFrom {
				switch {
				case e.ConfigMapRef != nil && e.ConfigMapRef.Name == cm.Name:
					cmRef = true
					maps.Copy(env, cm.Data)
				case e.SecretRef != nil && slices.ContainsFunc(m.secrets, func(s corev1.Secret) bool { return s.Name == e.SecretRef.Name }):
					envSecrets[e.SecretRef.Name] = true
					data, _ := m.secretData(e.SecretRef.Name)
					for k, v := range data {
						env[k] = string(v)
					}
				default:
					t.Errorf("%s/%s: envFrom %+v refers to nothing in k8s/", p.name, c.Name, e)
				}
			}
			if !cmRef {
				t.Errorf("%s/%s: configuration not from %s", p.name, c.Name, cm.Name)
			}
			for _, e := range c.Env {
				if e.ValueFrom != nil {
					t.Errorf("%s/%s: env %s from elsewhere", p.name, c.Name, e.Name)
				}
				env[e.Name] = e.Value
			}
			// Partitions are shared through leases: a replica limited to some of them
			// leaves the others without a standby.
			if v, ok := env["CXLINK_PROCESS_PARTITIONS"]; ok && v != "all" {
				t.Errorf("%s/%s: CXLINK_PROCESS_PARTITIONS=%s", p.name, c.Name, v)
			}
			// cxlink accepts exactly this environment: every variable known, all valid.
			if _, err := app.LoadConfig(env); err != nil {
				t.Errorf("%s/%s: cxlink refuses the configuration: %v", p.name, c.Name, err)
			}
		}
	}
	known := knownVariables()
	for k := range cm.Data {
		if !known[k] {
			t.Errorf("ConfigMap %s: %s is not a cxlink variable", cm.Name, k)
		}
		if strings.Contains(k, "SECRET") || strings.Contains(k, "PASSWORD") || strings.HasSuffix(k, "_KEY") || strings.HasSuffix(k, "_TOKEN") {
			t.Errorf("ConfigMap holds %s: secrets belong in a Secret", k)
		}
	}
	for name := range envSecrets {
		data, _ := m.secretData(name)
		for k := range data {
			if !known[k] {
				t.Errorf("Secret %s: %s is not a cxlink variable", name, k)
			}
			if _, inCM := cm.Data[k]; inCM {
				t.Errorf("%s is in the ConfigMap and in Secret %s", k, name)
			}
		}
	}

	// Identical process replicas, up to the partition count, that stay up through a
	// rollout and a drain and spread over nodes; two drift detectors (one stands by).
	parts, _ := strconv.Atoi(cm.Data["CXLINK_STREAM_PARTITIONS"])
	for _, d := range roles["process"] {
		if n := replicas(d); n < 2 || n > parts {
			t.Errorf("%s: %d replicas, want 2 to CXLINK_STREAM_PARTITIONS (%d)", d.Name, n, parts)
		}
		if ru := d.Spec.Strategy.RollingUpdate; d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType ||
			ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
			t.Errorf("%s: want a rolling update that keeps every replica up (maxUnavailable 0)", d.Name)
		}
		if !slices.ContainsFunc(d.Spec.Template.Spec.TopologySpreadConstraints, func(c corev1.TopologySpreadConstraint) bool {
			return c.TopologyKey == "kubernetes.io/hostname" && c.LabelSelector != nil && matches(c.LabelSelector.MatchLabels, d.Spec.Template.Labels)
		}) {
			t.Errorf("%s: not spread over nodes", d.Name)
		}
	}
	for _, d := range roles["drift"] {
		if replicas(d) < 2 {
			t.Errorf("%s: %d replica, want a standby", d.Name, replicas(d))
		}
	}
	for _, d := range m.deployments {
		if !slices.ContainsFunc(m.pdbs, func(p policyv1.PodDisruptionBudget) bool {
			return matches(p.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
		}) {
			t.Errorf("%s: no PodDisruptionBudget", d.Name)
		}
	}

	// Services, disruption budgets and autoscalers point at pods that exist.
	for _, s := range m.services {
		found := false
		for _, d := range m.deployments {
			if matches(s.Spec.Selector, d.Spec.Template.Labels) {
				found = true
				for _, sp := range s.Spec.Ports {
					if !slices.ContainsFunc(d.Spec.Template.Spec.Containers[0].Ports, func(p corev1.ContainerPort) bool { return p.Name == sp.TargetPort.String() }) {
						t.Errorf("service %s: targetPort %s is not a port of %s", s.Name, sp.TargetPort.String(), d.Name)
					}
				}
			}
		}
		if !found {
			t.Errorf("service %s selects no pods", s.Name)
		}
	}
	for _, p := range m.pdbs {
		if !slices.ContainsFunc(m.deployments, func(d appsv1.Deployment) bool { return matches(p.Spec.Selector.MatchLabels, d.Spec.Template.Labels) }) {
			t.Errorf("PodDisruptionBudget %s selects no pods", p.Name)
		}
	}
	for _, h := range m.hpas {
		if !slices.ContainsFunc(m.deployments, func(d appsv1.Deployment) bool { return d.Name == h.Spec.ScaleTargetRef.Name }) {
			t.Errorf("HorizontalPodAutoscaler %s scales %s, which does not exist", h.Name, h.Spec.ScaleTargetRef.Name)
		}
	}
	for _, d := range m.deployments {
		if d.Namespace != m.namespaces[0].Name {
			t.Errorf("%s is in namespace %q", d.Name, d.Namespace)
		}
	}
}

func replicas(d appsv1.Deployment) int {
	if d.Spec.Replicas == nil {
		return 1
	}
	return int(*d.Spec.Replicas)
}

// knownVariables are the env tags of cxlink's configuration.
func knownVariables() map[string]bool {
	out := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if name, ok := f.Tag.Lookup("env"); ok {
				out[strings.Split(name, ",")[0]] = true
			} else if f.Type.Kind() == reflect.Struct {
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeOf(app.Config{}))
	return out
}

// TestKubernetesDependencies checks the NATS Helm values and the ClickHouse installation
// the manifests rely on: a 3-node JetStream cluster that syncs before acknowledging and
// lets in cxlink's key only, and the service the ConfigMap names.
func TestKubernetesDependencies(t *testing.T) {
	var nats struct {
		Config struct {
			Cluster struct {
				Enabled  bool `json:"enabled"`
				Replicas int  `json:"replicas"`
			} `json:"cluster"`
			JetStream struct {
				Enabled   bool `json:"enabled"`
				FileStore struct {
					Enabled bool `json:"enabled"`
					PVC     struct {
						Enabled bool   `json:"enabled"`
						Size    string `json:"size"`
					} `json:"pvc"`
				} `json:"fileStore"`
				Merge struct {
					SyncInterval string `json:"sync_interval"`
				} `json:"merge"`
			} `json:"jetstream"`
			Merge struct {
				Authorization struct {
					Users []map[string]any `json:"users"`
				} `json:"authorization"`
			} `json:"merge"`
		} `json:"config"`
	}
	b, err := os.ReadFile("k8s/nats-values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &nats); err != nil {
		t.Fatal(err)
	}
	c := nats.Config
	if !c.Cluster.Enabled || c.Cluster.Replicas != 3 || !c.JetStream.Enabled || !c.JetStream.FileStore.Enabled || !c.JetStream.FileStore.PVC.Enabled || c.JetStream.FileStore.PVC.Size == "" {
		t.Errorf("nats-values.yaml: want a 3-node cluster with JetStream on persistent file storage: %+v", c)
	}
	if c.JetStream.Merge.SyncInterval != "always" {
		t.Errorf("nats-values.yaml: sync_interval %q, want always (docs/guarantees.md, Durability)", c.JetStream.Merge.SyncInterval)
	}
	if users := c.Merge.Authorization.Users; len(users) != 1 || users[0]["nkey"] == nil {
		t.Errorf("nats-values.yaml: want one user, cxlink's nkey: %v", users)
	}
	m := loadManifests(t)
	cm := m.configMaps[0].Data
	if cm["CXLINK_STREAM_REPLICAS"] != strconv.Itoa(c.Cluster.Replicas) || !strings.HasPrefix(cm["NATS_URL"], "nats://nats.nats.svc") || cm["NATS_NKEY_FILE"] == "" {
		t.Errorf("ConfigMap: NATS_URL %q, NATS_NKEY_FILE %q and CXLINK_STREAM_REPLICAS %q do not match the NATS release", cm["NATS_URL"], cm["NATS_NKEY_FILE"], cm["CXLINK_STREAM_REPLICAS"])
	}

	var chi struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name, Namespace string
		} `json:"metadata"`
		Spec struct {
			Configuration struct {
				Users    map[string]any `json:"users"`
				Profiles map[string]any `json:"profiles"`
				Clusters []struct {
					Name string `json:"name"`
				} `json:"clusters"`
			} `json:"configuration"`
		} `json:"spec"`
	}
	if b, err = os.ReadFile("k8s/clickhouse.yaml"); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &chi); err != nil {
		t.Fatal(err)
	}
	if chi.APIVersion != "clickhouse.altinity.com/v1" || chi.Kind != "ClickHouseInstallation" || len(chi.Spec.Configuration.Clusters) != 1 {
		t.Errorf("clickhouse.yaml: %+v", chi)
	}
	// The operator names the service clickhouse-<installation>.
	want := fmt.Sprintf("clickhouse-%s.%s.svc.cluster.local:9000", chi.Metadata.Name, chi.Metadata.Namespace)
	if cm["CLICKHOUSE_ADDR"] != want {
		t.Errorf("CLICKHOUSE_ADDR %q, want the installation's service %s", cm["CLICKHOUSE_ADDR"], want)
	}
	if _, ok := chi.Spec.Configuration.Users[cm["CLICKHOUSE_USER"]+"/password_sha256_hex"]; !ok {
		t.Errorf("clickhouse.yaml defines no user %q", cm["CLICKHOUSE_USER"])
	}
	// The users of deploy/clickhouse (tested on a real server in clickhouse_test.go): the
	// writer limited to both databases, Grafana's read-only user to the dashboards' one.
	u, p := chi.Spec.Configuration.Users, chi.Spec.Configuration.Profiles
	db := cm["CLICKHOUSE_DATABASE"]
	if got := fmt.Sprint(u[cm["CLICKHOUSE_USER"]+"/allow_databases/database"]); got != fmt.Sprintf("[%s %s_private]", db, db) {
		t.Errorf("the writer's databases: %s", got)
	}
	if got := fmt.Sprint(u["grafana/allow_databases/database"]); got != fmt.Sprintf("[%s]", db) || u["grafana/profile"] != "cxlink_readonly" ||
		fmt.Sprint(p["cxlink_readonly/readonly"]) != "2" || u[cm["CLICKHOUSE_USER"]+"/access_management"] != nil {
		t.Errorf("grafana's user: databases %s, profile %v, readonly %v", got, u["grafana/profile"], p["cxlink_readonly/readonly"])
	}
}
