package app

import (
	"strings"
	"testing"
)

func TestNATSAuthValidate(t *testing.T) {
	_, err := LoadConfig(map[string]string{
		"NATS_URL": "nats://127.0.0.1:4222", "NATS_CREDS_FILE": "a.creds", "NATS_TOKEN": "t",
		"NATS_PASSWORD": "p", "NATS_PASSWORD_FILE": "f", "NATS_TLS_CERT_FILE": "c",
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"choose one way", "NATS_PASSWORD and NATS_PASSWORD_FILE", "NATS_USER", "NATS_TLS_KEY_FILE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "=p") {
		t.Errorf("the error shows a secret: %v", err)
	}
}

// A password written into NATS_URL never appears in an error.
func TestNATSURLPasswordIsRedacted(t *testing.T) {
	_, err := LoadConfig(map[string]string{"NATS_URL": "nats://cxlink:s3cr3t@:4222/,::"})
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error: %v", err)
	}
	if got := redactURL("tls://user:pa:ss@host:4222"); got != "tls://user:xxxxx@host:4222" {
		t.Errorf("redactURL: %s", got)
	}
}

func TestClickHouseSecretsValidate(t *testing.T) {
	_, err := LoadConfig(map[string]string{"CLICKHOUSE_PASSWORD": "p", "CLICKHOUSE_PASSWORD_FILE": "f", "CLICKHOUSE_TLS_CA_FILE": "ca.pem"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"CLICKHOUSE_PASSWORD and CLICKHOUSE_PASSWORD_FILE", "CLICKHOUSE_TLS=true"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}
