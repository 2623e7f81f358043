package deploy

// The Kubernetes manifests in k8s/, validated offline: every object decoded strictly into
// its k8s.io/api type (an unknown or misspelt field fails), then checked the way a
// cluster would find out too late: probes on /healthz and /readyz, resources, env from
// the ConfigMap and Secret that exist, selectors that match, partitions owned exactly
// once, and a configuration that cxlink itself accepts.

import (
	"bytes"
	"fmt"
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
	if len(m.configMaps) != 1 || len(m.secrets) != 1 || len(m.jobs) != 1 {
		t.Fatalf("want one ConfigMap, one Secret and the migrate Job: %d, %d, %d", len(m.configMaps), len(m.secrets), len(m.jobs))
	}
	cm, sec := m.configMaps[0], m.secrets[0]

	// Every role is a Deployment of its own.
	roles := map[string]int{}
	for _, d := range m.deployments {
		roles[d.Spec.Template.Labels["app.kubernetes.io/component"]]++
	}
	if roles["ingest"] != 1 || roles["process"] < 1 || roles["drift"] != 1 {
		t.Errorf("deployments by role: %v", roles)
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
			// Configuration from the ConfigMap and the Secret that exist, and nowhere else.
			var cmRef, secRef bool
			for _, e := range c.EnvFrom {
				switch {
				case e.ConfigMapRef != nil && e.ConfigMapRef.Name == cm.Name:
					cmRef = true
				case e.SecretRef != nil && e.SecretRef.Name == sec.Name:
					secRef = true
				default:
					t.Errorf("%s/%s: envFrom %+v refers to nothing in k8s/", p.name, c.Name, e)
				}
			}
			if !cmRef || !secRef {
				t.Errorf("%s/%s: configuration not from %s and %s", p.name, c.Name, cm.Name, sec.Name)
			}
			for _, e := range c.Env {
				if e.ValueFrom != nil {
					t.Errorf("%s/%s: env %s from elsewhere", p.name, c.Name, e.Name)
				}
			}
			// cxlink accepts exactly this environment: every variable known, all valid.
			env := map[string]string{}
			for k, v := range cm.Data {
				env[k] = v
			}
			for k, v := range sec.StringData {
				env[k] = v
			}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
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
	}
	for k := range sec.StringData {
		if !known[k] {
			t.Errorf("Secret %s: %s is not a cxlink variable", sec.Name, k)
		}
		if strings.Contains(k, "SECRET") || strings.Contains(k, "PASSWORD") || strings.Contains(k, "KEY") {
			if _, inCM := cm.Data[k]; inCM {
				t.Errorf("%s is in the ConfigMap: secrets belong in the Secret", k)
			}
		}
	}
	for k := range cm.Data {
		if strings.Contains(k, "SECRET") || strings.Contains(k, "PASSWORD") || strings.HasSuffix(k, "_KEY") {
			t.Errorf("ConfigMap holds %s: secrets belong in the Secret", k)
		}
	}

	// Each partition is owned by exactly one process Deployment, of one replica, replaced
	// with Recreate: two processes on one partition would share its durable consumer.
	parts, _ := strconv.Atoi(cm.Data["CXLINK_PARTITIONS"])
	owners := make([]int, parts)
	for _, d := range m.deployments {
		if d.Spec.Template.Labels["app.kubernetes.io/component"] != "process" {
			continue
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			t.Errorf("%s: a process Deployment must have 1 replica and the Recreate strategy", d.Name)
		}
		var rng string
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if e.Name == "CXLINK_PROCESS_PARTITIONS" {
				rng = e.Value
			}
		}
		var lo, hi int
		if _, err := fmt.Sscanf(rng, "%d-%d", &lo, &hi); err != nil || lo > hi || hi >= parts {
			t.Errorf("%s: CXLINK_PROCESS_PARTITIONS %q is not a range within 0-%d", d.Name, rng, parts-1)
			continue
		}
		for p := lo; p <= hi; p++ {
			owners[p]++
		}
	}
	for p, n := range owners {
		if n != 1 {
			t.Errorf("partition %d is owned by %d process Deployments", p, n)
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
// the manifests rely on: a 3-node JetStream cluster, and the service the ConfigMap names.
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
			} `json:"jetstream"`
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
	m := loadManifests(t)
	cm := m.configMaps[0].Data
	if cm["CXLINK_STREAM_REPLICAS"] != strconv.Itoa(c.Cluster.Replicas) || !strings.HasPrefix(cm["NATS_URL"], "nats://nats.nats.svc") {
		t.Errorf("ConfigMap: NATS_URL %q and CXLINK_STREAM_REPLICAS %q do not match the NATS release", cm["NATS_URL"], cm["CXLINK_STREAM_REPLICAS"])
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
