package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
	"github.com/cxlink/cxlink/cmd/cxlink/apptest/proc"
	"github.com/cxlink/cxlink/ingest/auth"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// testPKI writes a CA and a certificate for 127.0.0.1 signed by it into dir.
func testPKI(t *testing.T, dir string) (caFile, certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cxlink test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", der), write("key.pem", "EC PRIVATE KEY", keyDER), pool
}

// A deployment with every secret in place: NATS over TLS with a password from a file,
// ClickHouse with a password from a file, ingest over HTTPS with API tokens and HMAC
// signatures, probes and metrics on their own listener. Unauthenticated, badly signed
// and replayed requests are refused; authenticated events are stored with their source;
// no secret appears in any log.
func TestSecuredDeployment(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile, pool := testPKI(t, dir)
	const natsPassword = "nats-0b1c2d-password"
	const hmacSecret = "survey-tool-7e6f5a-shared-secret"
	writeSecret := func(name, value string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// NATS with TLS and a user.
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		Username: "cxlink", Password: natsPassword, NoSigs: true, NoLog: true,
		TLS: true, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, TLSTimeout: 5})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	ch := chtest.StartPrivate(t)
	database := ch.NewDatabase(t)

	token, line, err := auth.NewToken("zendesk")
	if err != nil {
		t.Fatal(err)
	}
	credentials := writeSecret("credentials", line+"\nsurveys hmac "+hmacSecret)
	eventsAddr, adminAddr := proc.FreeAddr(t), proc.FreeAddr(t)
	env := map[string]string{
		"NATS_URL":                  "tls://" + ns.Addr().String(),
		"NATS_USER":                 "cxlink",
		"NATS_PASSWORD_FILE":        writeSecret("nats-password", natsPassword),
		"NATS_TLS_CA_FILE":          caFile,
		"CLICKHOUSE_ADDR":           ch.Addr(),
		"CLICKHOUSE_DATABASE":       database,
		"CLICKHOUSE_USER":           chtest.SecretUser,
		"CLICKHOUSE_PASSWORD_FILE":  writeSecret("clickhouse-password", chtest.SecretPassword),
		"CXLINK_AUTH":               "required",
		"CXLINK_AUTH_FILE":          credentials,
		"CXLINK_TLS_CERT_FILE":      certFile,
		"CXLINK_TLS_KEY_FILE":       keyFile,
		"CXLINK_ADMIN_ADDR":         adminAddr,
		"CXLINK_HTTP_ADDR":          eventsAddr,
		"CXLINK_LOG_LEVEL":          "debug",
		"CXLINK_BATCH_MAX_DELAY":    "50ms",
		"CLICKHOUSE_DIAL_TIMEOUT":   "2s",
		"CLICKHOUSE_INSERT_TIMEOUT": "5s",
	}
	// The logs are checked once the roles stopped: this cleanup runs after theirs.
	logs := map[string]*apptest.LogBuffer{}
	t.Cleanup(func() {
		for role, l := range logs {
			text := l.String()
			for name, secret := range map[string]string{"API token": token, "HMAC secret": hmacSecret,
				"NATS password": natsPassword, "ClickHouse password": chtest.SecretPassword} {
				if strings.Contains(text, secret) {
					t.Errorf("the %s log contains the %s", role, name)
				}
			}
			if t.Failed() {
				t.Logf("%s log:\n%s", role, proc.Tail(text, 30))
			}
		}
	})
	for _, role := range []string{"ingest", "process"} {
		roleEnv := maps.Clone(env)
		if role == "process" {
			roleEnv["CXLINK_ADMIN_ADDR"] = proc.FreeAddr(t)
		}
		logs[role] = &apptest.LogBuffer{}
		apptest.StartRole(t, roleEnv, logs[role], role)
	}

	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "https://" + eventsAddr + "/v1/events"
	now := time.Now().UTC()
	event := func(id string, extra string) string {
		return fmt.Sprintf(`{"id":%q,"type":"survey_response","occurred_at":%q,"survey":"ces","score":6,"team":"red"%s}`, id, now.Format(time.RFC3339), extra)
	}
	send := func(body string, header map[string]string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	signed := func(body string, at time.Time, secret string) map[string]string {
		return map[string]string{auth.HeaderSource: "surveys", auth.HeaderTimestamp: strconv.FormatInt(at.Unix(), 10),
			auth.HeaderSignature: auth.Sign([]byte(secret), at.Unix(), []byte(body))}
	}
	bearer := map[string]string{"Authorization": "Bearer " + token}

	for name, c := range map[string]struct {
		body   string
		header map[string]string
		code   int
	}{
		"no credentials":      {event("anon-1", ""), nil, http.StatusUnauthorized},
		"wrong token":         {event("anon-2", ""), map[string]string{"Authorization": "Bearer cxl_0000"}, http.StatusUnauthorized},
		"badly signed":        {event("anon-3", ""), signed(event("anon-3", ""), now, "not-the-shared-secret-at-all"), http.StatusUnauthorized},
		"replayed signature":  {event("anon-4", ""), signed(event("anon-4", ""), now.Add(-10*time.Minute), hmacSecret), http.StatusUnauthorized},
		"token":               {event("tok-1", ""), bearer, http.StatusAccepted},
		"token, own source":   {event("tok-2", `,"source":"zendesk"`), bearer, http.StatusAccepted},
		"token, other source": {event("tok-3", `,"source":"surveys"`), bearer, http.StatusBadRequest},
		"signed":              {event("sig-1", ""), signed(event("sig-1", ""), now, hmacSecret), http.StatusAccepted},
		"signed a minute ago": {event("sig-2", ""), signed(event("sig-2", ""), now.Add(-time.Minute), hmacSecret), http.StatusAccepted},
	} {
		code, body := send(c.body, c.header)
		if code != c.code {
			t.Errorf("%s: %d %s, want %d", name, code, body, c.code)
		}
		if code == http.StatusUnauthorized {
			var e struct{ Error string }
			if json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
				t.Errorf("%s: the 401 does not say why: %s", name, body)
			}
		}
	}
	// Plain HTTP on the TLS listener gets nowhere; the events listener serves no metrics;
	// the admin listener does.
	if resp, err := http.Post("http://"+eventsAddr+"/v1/events", "application/json", strings.NewReader(event("plain", ""))); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusAccepted {
			t.Error("plain HTTP was accepted on the TLS listener")
		}
	}
	if resp, err := client.Get("https://" + eventsAddr + "/metrics"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("metrics on the events listener: %v %v", resp, err)
	}
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `cxlink_auth_requests_total{result="bad_signature"} 1`) ||
		!strings.Contains(string(metrics), `cxlink_auth_requests_total{result="stale_timestamp"} 1`) {
		t.Errorf("auth metrics:\n%s", grep(string(metrics), "cxlink_auth"))
	}

	// The accepted events are stored with the source of their credentials.
	db, err := clickhouse.Open(context.Background(), ch.Config(database), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := map[string]string{"tok-1": "zendesk", "tok-2": "zendesk", "sig-1": "surveys", "sig-2": "surveys"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := map[string]string{}
		rows, err := db.Conn().Query(context.Background(), "SELECT id, source FROM "+database+".survey_responses FINAL")
		if err == nil {
			for rows.Next() {
				var id, source string
				if rows.Scan(&id, &source) == nil {
					got[id] = source
				}
			}
			rows.Close()
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored %v, want %v", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
