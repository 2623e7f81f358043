package apptest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// PostNDJSON posts events to url (…/v1/events) as NDJSON with client (nil: the default
// client) and returns the answer, its body read and closed, and the body.
func PostNDJSON(client *http.Client, url string, events []map[string]any) (*http.Response, []byte, error) {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, e := range events {
		if err := enc.Encode(e); err != nil {
			return nil, nil, err
		}
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Post(url, "application/x-ndjson", &body)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp, raw, err
}

// WaitMetric waits up to a minute until the metrics page at url has a sample of series
// (its name and labels exactly as exposed, e.g. `cxlink_up{role="ingest"}`).
func WaitMetric(t testing.TB, url, series string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), series+" ") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no %s after a minute", url, series)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
