package main

// The hostile-client suite: a real `cxlink run` (its own process, so that its memory is
// its own) with credentials required and every webhook on, tried as an attacker would.
// Each case asserts its outcome and prints its figures.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest/proc"
	"github.com/cxlink/cxlink/ingest/adapters"
	"github.com/cxlink/cxlink/ingest/auth"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// hostileMemoryLimit is the ingest pod's memory limit (deploy/k8s/ingest.yaml); `cxlink
// run` also holds the processors and JetStream, so staying under it is the stricter test.
const hostileMemoryLimit = 512 << 20

// hostileRoute is one way in, as an attacker without the credentials reaches it: the
// request's path and headers, and what the server answers a body that never finishes.
type hostileRoute struct {
	name, path string
	header     map[string]string
	// signed: the credentials are in a signature over the body, so the body is read,
	// under the unverified budget and its read timeout, before it is refused.
	signed bool
}

func hostileRoutes() []hostileRoute {
	ts := fmt.Sprint(time.Now().Unix())
	return []hostileRoute{
		{name: "events, no credentials", path: "/v1/events"},
		{name: "events, a wrong token", path: "/v1/events", header: map[string]string{"Authorization": "Bearer cxl_forged"}},
		{name: "events, a forged signature", path: "/v1/events", signed: true, header: map[string]string{
			auth.HeaderSource: "surveys", auth.HeaderTimestamp: ts, auth.HeaderSignature: "sha256=" + strings.Repeat("0", 64)}},
		{name: "zendesk, a forged signature", path: "/v1/sources/zendesk", signed: true, header: map[string]string{
			"X-Zendesk-Webhook-Signature-Timestamp": time.Now().UTC().Format(time.RFC3339), "X-Zendesk-Webhook-Signature": "Zm9yZ2Vk"}},
		{name: "intercom, a forged signature", path: "/v1/sources/intercom", signed: true, header: map[string]string{
			"X-Hub-Signature": "sha1=" + strings.Repeat("0", 40)}},
		{name: "delighted, a forged signature", path: "/v1/sources/delighted", signed: true, header: map[string]string{
			"X-Delighted-Webhook-Signature": "sha256=" + strings.Repeat("0", 64)}},
		{name: "freshdesk, a wrong secret", path: "/v1/sources/freshdesk", header: map[string]string{
			"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("cxlink:forged"))}},
	}
}

// attack sends r's headers announcing an 8 MiB body, then the body: all of it as fast as
// the server reads it when fast, else 16 bytes every half second. It returns the status
// the server answered ("closed" when it closed without one) and when.
func attack(addr string, r hostileRoute, fast bool) (string, time.Duration) {
	start := time.Now()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "dial failed", time.Since(start)
	}
	defer conn.Close()
	var h strings.Builder
	fmt.Fprintf(&h, "POST %s HTTP/1.1\r\nHost: cxlink\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", r.path, 8<<20)
	for k, v := range r.header {
		fmt.Fprintf(&h, "%s: %s\r\n", k, v)
	}
	h.WriteString("\r\n")
	if _, err := io.WriteString(conn, h.String()); err != nil {
		return "closed", time.Since(start)
	}
	answered := make(chan string, 1)
	go func() {
		conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || len(line) < 12 {
			answered <- "closed"
			return
		}
		answered <- line[9:12]
	}()
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	for sent := 0; sent < 8<<20; {
		select {
		case code := <-answered:
			return code, time.Since(start)
		default:
		}
		if fast {
			conn.SetWriteDeadline(time.Now().Add(time.Minute))
			n, err := conn.Write(chunk)
			sent += n
			if err != nil {
				break
			}
			continue
		}
		if _, err := conn.Write(chunk[:16]); err != nil {
			break
		}
		sent += 16
		select {
		case code := <-answered:
			return code, time.Since(start)
		case <-time.After(500 * time.Millisecond):
		}
	}
	return <-answered, time.Since(start)
}

// hostileInstance is the `cxlink run` under attack.
type hostileInstance struct {
	addr, token string
	database    string
	pid         int
	run         *proc.Process
	db          *clickhouse.Client
}

func startHostile(t *testing.T) *hostileInstance {
	dir := t.TempDir()
	token, line, err := auth.NewToken("crm")
	if err != nil {
		t.Fatal(err)
	}
	credentials := filepath.Join(dir, "credentials")
	if err := os.WriteFile(credentials, []byte(line+"\nsurveys hmac a-long-random-secret-of-the-survey-tool types=survey_response\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ch := chtest.Start(t)
	database := ch.NewDatabase(t)
	addr := proc.FreeAddr(t)
	// A cxlink built without the race detector, whose memory would be several times
	// what cxlink uses.
	bin := filepath.Join(dir, "cxlink")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := map[string]string{
		"CLICKHOUSE_ADDR":                ch.Addr(),
		"CLICKHOUSE_DATABASE":            database,
		"CLICKHOUSE_DIAL_TIMEOUT":        "2s",
		"CLICKHOUSE_INSERT_TIMEOUT":      "10s",
		"CXLINK_DATA_DIR":                dir,
		"CXLINK_HTTP_ADDR":               addr,
		"CXLINK_AUTH":                    "required",
		"CXLINK_AUTH_FILE":               credentials,
		"CXLINK_ZENDESK_SIGNING_SECRET":  e2eZendeskSecret,
		"CXLINK_FRESHDESK_SECRET":        e2eFreshdeskSecret,
		"CXLINK_INTERCOM_CLIENT_SECRET":  e2eIntercomSecret,
		"CXLINK_DELIGHTED_API_KEY":       e2eDelightedKey,
		"CXLINK_MAX_DIMENSION_VALUES":    "40",
		"CXLINK_UNVERIFIED_READ_TIMEOUT": "2s",
		"CXLINK_STREAM_PARTITIONS":       "2",
		"CXLINK_WINDOWS":                 "10m,1h",
		"CXLINK_ROLLUP_STEP":             "1s",
		"CXLINK_BATCH_MAX_DELAY":         "100ms",
		"CXLINK_LEASE_TTL":               "3s",
		"CXLINK_SNAPSHOT_EVERY":          "2s",
	}
	environ := os.Environ()
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	run := proc.Start(t, proc.Spec{Name: "cxlink-run", Argv: []string{bin, "run"}, Dir: dir, Env: environ,
		Ready: proc.HTTPReady("http://" + addr + "/readyz"), ReadyTimeout: 90 * time.Second})
	h := &hostileInstance{addr: addr, token: token, database: database, pid: run.Pid(), run: run}
	db, err := clickhouse.Open(t.Context(), ch.Config(database), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h.db = db
	return h
}

// sendEvents posts events with the crm token and returns the status and the answer.
func (h *hostileInstance) sendEvents(client *http.Client, events ...string) (int, map[string]any, error) {
	req, _ := http.NewRequest(http.MethodPost, "http://"+h.addr+"/v1/events", strings.NewReader("["+strings.Join(events, ",")+"]"))
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var a map[string]any
	err = json.NewDecoder(resp.Body).Decode(&a)
	return resp.StatusCode, a, err
}

// flood runs 1,000 concurrent unauthenticated clients over every route for 15 seconds,
// each announcing an 8 MiB body and trickling it (a tenth sending it flat out when fast),
// while the authenticated sender sends; it checks and prints the outcome and returns the
// events the sender had accepted.
func (h *hostileInstance) flood(t *testing.T, client *http.Client, fast bool) int {
	kind := "trickling their bodies"
	if fast {
		kind = "a tenth sending 8 MiB flat out"
	}
	var rssMu sync.Mutex
	baseline, peakRSS := rssKB(h.pid, "VmRSS"), 0
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			rssMu.Lock()
			peakRSS = max(peakRSS, rssKB(h.pid, "VmRSS"))
			rssMu.Unlock()
			select {
			case <-stopSampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	const flooders, phase = 1000, 15 * time.Second
	routes := hostileRoutes()
	end := time.Now().Add(phase)
	var floodMu sync.Mutex
	answers := map[string]map[string]int{} // route → status → count
	var attempts atomic.Int64
	var flood sync.WaitGroup
	for i := range flooders {
		r := routes[i%len(routes)]
		flood.Add(1)
		go func() {
			defer flood.Done()
			for time.Now().Before(end) {
				code, _ := attack(h.addr, r, fast && i%10 == 0)
				attempts.Add(1)
				floodMu.Lock()
				if answers[r.name] == nil {
					answers[r.name] = map[string]int{}
				}
				answers[r.name][code]++
				floodMu.Unlock()
				time.Sleep(time.Second) // and again, as another request
			}
		}()
	}

	during := h.sender(t, client, fmt.Sprintf("flood-%t", fast), end)
	flood.Wait()
	close(stopSampling)
	<-sampled
	names := make([]string, 0, len(answers))
	for name := range answers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Logf("flood %-32s answers %v", name, answers[name])
		for code := range answers[name] {
			if strings.HasPrefix(code, "2") {
				t.Errorf("flood %s: %d requests answered %s", name, answers[name][code], code)
			}
		}
	}
	hwm := rssKB(h.pid, "VmHWM")
	rssMu.Lock()
	peak := peakRSS
	rssMu.Unlock()
	t.Logf("%d concurrent unauthenticated clients (%s) made %d requests in %s", flooders, kind, attempts.Load(), phase)
	t.Logf("the authenticated sender during the flood: %s", during)
	t.Logf("cxlink run RSS: %d MiB before this flood, peak %d MiB sampled, VmHWM %d MiB (limit %d MiB)",
		baseline/1024, peak/1024, hwm/1024, hostileMemoryLimit>>20)
	if hwm<<10 >= hostileMemoryLimit {
		t.Errorf("peak RSS %d MiB is over the ingest pod's limit of %d MiB", hwm/1024, hostileMemoryLimit>>20)
	}
	return during.accepted
}

// senderStats is what an authenticated sender saw.
type senderStats struct {
	requests, accepted, refused int
	elapsed, p50, p99           time.Duration
}

func (s senderStats) String() string {
	return fmt.Sprintf("%d requests, %d events accepted, %.1f events/s (target 100/s), latency p50 %s p99 %s, %d requests refused or failed",
		s.requests, s.accepted, float64(s.accepted)/s.elapsed.Seconds(), s.p50, s.p99, s.refused)
}

// sender posts 10 events every 100 ms with the crm token until end (a request that
// takes longer delays the next), and fails the test for every request not accepted.
func (h *hostileInstance) sender(t *testing.T, client *http.Client, name string, end time.Time) senderStats {
	var st senderStats
	var lat []time.Duration
	start := time.Now()
	for n := 0; time.Now().Before(end); n++ {
		time.Sleep(time.Until(start.Add(time.Duration(n) * 100 * time.Millisecond)))
		events := make([]string, 10)
		for j := range events {
			events[j] = survey(fmt.Sprintf("sender-%s-%d-%d", name, n, j), "billing", time.Now())
		}
		t0 := time.Now()
		code, a, err := h.sendEvents(client, events...)
		lat = append(lat, time.Since(t0))
		acc, _ := a["accepted"].(float64)
		st.requests++
		st.accepted += int(acc)
		if err != nil || code != http.StatusAccepted || acc != 10 {
			st.refused++
			if st.refused <= 3 {
				t.Errorf("%s: the authenticated sender was answered %d (%v accepted, %v)", name, code, acc, err)
			}
		}
	}
	st.elapsed = time.Since(start)
	slices.Sort(lat)
	st.p50, st.p99 = lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond)
	return st
}

func survey(id, category string, at time.Time) string {
	return fmt.Sprintf(`{"id":%q,"type":"survey_response","occurred_at":%q,"survey":"ces","score":5,"category":%q,"channel":"email","team":"alpha"}`,
		id, at.UTC().Format(time.RFC3339Nano), category)
}

// waitRows waits until q counts want rows and returns the count it saw last; {db} in q
// is the instance's database.
func (h *hostileInstance) waitRows(t *testing.T, want uint64, q string, args ...any) uint64 {
	t.Helper()
	q = strings.ReplaceAll(q, "{db}", h.database)
	var n uint64
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err := h.db.Conn().QueryRow(t.Context(), q, args...).Scan(&n); err == nil && n == want {
			return n
		}
	}
	return n
}

func TestHostileClients(t *testing.T) {
	h := startHostile(t)
	client := &http.Client{Timeout: 30 * time.Second}

	// A body that never finishes, on every route: refused at once where the credentials
	// are in the headers, read for at most the unverified read timeout (2s here) where
	// they are a signature over the body. Nothing of it is ever stored.
	t.Run("slow bodies on every route", func(t *testing.T) {
		for _, r := range hostileRoutes() {
			code, took := attack(h.addr, r, false)
			want := "401"
			if r.signed {
				want = "408"
			}
			t.Logf("%-32s answered %s after %s", r.name, code, took.Round(10*time.Millisecond))
			if code != want {
				t.Errorf("%s: a slow body answered %s, want %s", r.name, code, want)
			}
		}
	})

	// 1,000 concurrent unauthenticated requests, over every route, each announcing an
	// 8 MiB body and trickling it, a new one a second after each answer, for 15 seconds;
	// then again with a tenth of them sending their 8 MiB flat out. Meanwhile an
	// authenticated sender posts 10 events every 100 ms. No flood request is accepted,
	// every one of the sender's is, and the process stays under the ingest pod's memory
	// limit. The sender's rate and the peak RSS are printed, with the sender's rate
	// before the flood to compare.
	t.Run("1000 unauthenticated requests and an authenticated sender", func(t *testing.T) {
		before := h.sender(t, client, "quiet", time.Now().Add(5*time.Second))
		t.Logf("the authenticated sender before the flood: %s", before)
		accepted := before.accepted
		for _, fast := range []bool{false, true} {
			accepted += h.flood(t, client, fast)
		}
		if want := uint64(accepted); h.waitRows(t, want, "SELECT count() FROM {db}.survey_responses FINAL WHERE id LIKE 'sender-%'") != want {
			t.Errorf("not all of the sender's %d accepted events stored", want)
		}
	})

	// Another source sends, first, the id a Zendesk rating will have: both are stored,
	// each under its own source, and the real rating is not taken for a duplicate.
	t.Run("a forged id of another source", func(t *testing.T) {
		const id = "zendesk:rating:ticket:900"
		code, a, err := h.sendEvents(client, survey(id, "billing", time.Now()))
		if err != nil || code != http.StatusAccepted || a["accepted"] != 1.0 {
			t.Fatalf("the forged id: %d %v %v", code, a, err)
		}
		body := fmt.Appendf(nil, `{"satisfaction_rating": {"score": "bad", "ticket_id": 900, "assignee_id": 1, "group_id": 8447320466430,
			"requester_id": 2, "comment": "", "updated_at": %q}}`, time.Now().UTC().Format(time.RFC3339))
		code, answer := postSigned(t, "http://"+h.addr, "zendesk", body, false)
		var r adapters.Response
		if err := json.Unmarshal([]byte(answer), &r); err != nil || code != http.StatusAccepted || r.Accepted != 1 || r.Duplicates != 0 {
			t.Fatalf("the real rating after the forged id: %d %s", code, answer)
		}
		got := h.waitRows(t, 2, "SELECT uniqExact(source) FROM {db}.survey_responses FINAL WHERE id = ?", id)
		t.Logf("id %s: the forger's event and Zendesk's both stored (%d sources); Zendesk's answer %s", id, got, strings.TrimSpace(answer))
		if got != 2 {
			t.Fatalf("id %s stored for %d sources, want 2 (crm and zendesk)", id, got)
		}
	})

	// Resolved → reopened → resolved within a minute, with Freshdesk retrying the first
	// solve: every state change is stored, the retry is a duplicate.
	t.Run("freshdesk reopen sequence", func(t *testing.T) {
		var got []string
		for _, step := range []struct{ triggered, want string }{
			{"{ticket_action:created}", "accepted"},
			{"{status:{from:Open,to:Resolved}}", "accepted"},
			{"{status:{from:Open,to:Resolved}}", "duplicate"}, // Freshdesk's retry
			{"{status:{from:Resolved,to:Open}}", "accepted"},
			{"{status:{from:Open,to:Resolved}}", "accepted"},
		} {
			body := fmt.Appendf(nil, `{"freshdesk_webhook": {"triggered_event": %q, "ticket_id": "4711", "ticket_type": "Refund",
				"ticket_source": "Email", "ticket_group_name": "billing"}}`, step.triggered)
			code, answer := postSigned(t, "http://"+h.addr, "freshdesk", body, false)
			var r adapters.Response
			if err := json.Unmarshal([]byte(answer), &r); err != nil || code != http.StatusAccepted {
				t.Fatalf("%s: %d %s", step.triggered, code, answer)
			}
			outcome := map[bool]string{true: "accepted", false: "duplicate"}[r.Accepted == 1]
			got = append(got, step.triggered+" "+outcome)
			if r.Accepted+r.Duplicates != 1 || outcome != step.want {
				t.Errorf("%s: accepted %d duplicates %d, want %s", step.triggered, r.Accepted, r.Duplicates, step.want)
			}
			time.Sleep(1100 * time.Millisecond) // Freshdesk's changes a second or more apart
		}
		rows := h.waitRows(t, 4, "SELECT count() FROM {db}.tickets FINAL WHERE ticket_id = 'freshdesk:4711'")
		t.Logf("freshdesk ticket 4711: %s; %d ticket rows stored", strings.Join(got, ", "), rows)
		if rows != 4 {
			t.Errorf("%d ticket rows for freshdesk:4711, want 4 (created, solved, reopened, solved)", rows)
		}
	})

	// A flood of made-up Zendesk ticket types through the webhook stops at the label
	// bound (40 values per field here, for the whole deployment), the field named.
	t.Run("label flood through a webhook", func(t *testing.T) {
		base := vendorSample(t, "zendesk_ticket_created.json")
		accepted, rejected := 0, 0
		for i := range 80 {
			body := bytes.Replace(base, []byte(`"TASK"`), fmt.Appendf(nil, `"made-up-%d"`, i), 1)
			body = bytes.Replace(body, []byte(`"5158"`), fmt.Appendf(nil, `"%d"`, 90000+i), 1)
			body = bytes.ReplaceAll(body, []byte("zen:ticket:5158"), fmt.Appendf(nil, "zen:ticket:%d", 90000+i))
			body = bytes.Replace(body, []byte("cbe4028c"), fmt.Appendf(nil, "%08d", i), 1)
			body = bytes.Replace(body, []byte("2025-01-08T10:12:07.672717030Z"), []byte(time.Now().UTC().Format(time.RFC3339Nano)), 1)
			code, answer := postSigned(t, "http://"+h.addr, "zendesk", body, false)
			var r adapters.Response
			if err := json.Unmarshal([]byte(answer), &r); err != nil {
				t.Fatalf("ticket %d: %d %s", i, code, answer)
			}
			switch {
			case code == http.StatusAccepted && r.Accepted == 1:
				accepted++
			case code == http.StatusBadRequest && r.Rejected == 1 && len(r.Results) == 1 && len(r.Results[0].Errors) == 1 && r.Results[0].Errors[0].Field == "category":
				rejected++
			default:
				t.Fatalf("ticket %d: %d %s", i, code, answer)
			}
		}
		stored := h.waitRows(t, uint64(accepted), "SELECT count() FROM {db}.tickets FINAL WHERE category LIKE 'made-up-%'")
		var categories uint64
		if err := h.db.Conn().QueryRow(t.Context(), strings.ReplaceAll("SELECT uniqExact(category) FROM (SELECT category FROM {db}.tickets UNION ALL SELECT category FROM {db}.survey_responses) WHERE category != ''", "{db}", h.database)).Scan(&categories); err != nil {
			t.Fatal(err)
		}
		t.Logf("80 made-up ticket types through the Zendesk webhook: %d accepted (%d stored), %d rejected naming category; %d distinct categories stored in all",
			accepted, stored, rejected, categories)
		if accepted > 40 || rejected < 40 || stored != uint64(accepted) || categories > 40 {
			t.Fatalf("the label bound of 40 did not hold: %d accepted, %d stored, %d rejected, %d categories stored", accepted, stored, rejected, categories)
		}
	})

	if err := h.run.Exited(); err != nil {
		t.Fatalf("during the attacks: %v", err)
	}
}
