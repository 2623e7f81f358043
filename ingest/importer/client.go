package importer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cxlink/cxlink/ingest/httpapi"
)

// Client posts batches of events to the ingest API.
type Client struct {
	// Target is the API's base URL, e.g. http://127.0.0.1:8080.
	Target string
	// HTTP defaults to a client with a 2-minute timeout.
	HTTP *http.Client
	// Header is added to every request (e.g. credentials).
	Header http.Header
	// MaxWait bounds the retries of one batch (default 10 minutes): past it the import
	// stops, resumable.
	MaxWait time.Duration
}

// Post sends one NDJSON batch and returns the API's answer once no event of it is left
// "failed": a 503 or a network error is retried with back-off (resending is safe, ids
// make it idempotent).
func (c *Client) Post(ctx context.Context, ndjson []byte) (httpapi.Response, error) {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	maxWait := c.MaxWait
	if maxWait == 0 {
		maxWait = 10 * time.Minute
	}
	url := strings.TrimRight(c.Target, "/") + "/v1/events"
	deadline := time.Now().Add(maxWait)
	wait := 500 * time.Millisecond
	for {
		resp, retryAfter, err := c.post(ctx, hc, url, ndjson)
		if err == nil {
			return resp, nil
		}
		if _, permanent := err.(permanentError); permanent || ctx.Err() != nil {
			return httpapi.Response{}, err
		}
		if time.Now().Add(wait).After(deadline) {
			return httpapi.Response{}, fmt.Errorf("%w (gave up after %s: run the same command again to resume)", err, maxWait)
		}
		if retryAfter > wait {
			wait = retryAfter
		}
		select {
		case <-ctx.Done():
			return httpapi.Response{}, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// permanentError is an answer that resending cannot change.
type permanentError struct{ error }

func (c *Client) post(ctx context.Context, hc *http.Client, url string, body []byte) (httpapi.Response, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return httpapi.Response{}, 0, permanentError{err}
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	res, err := hc.Do(req)
	if err != nil {
		return httpapi.Response{}, 0, fmt.Errorf("POST %s: %w", url, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return httpapi.Response{}, 0, fmt.Errorf("POST %s: reading the answer: %w", url, err)
	}
	retryAfter := time.Duration(0)
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil {
		retryAfter = time.Duration(s) * time.Second
	}
	switch res.StatusCode {
	case http.StatusAccepted, http.StatusBadRequest, http.StatusServiceUnavailable:
	case http.StatusRequestEntityTooLarge:
		return httpapi.Response{}, 0, permanentError{fmt.Errorf("POST %s: %s: %s (use a smaller --batch)", url, res.Status, bytes.TrimSpace(raw))}
	default:
		err := fmt.Errorf("POST %s: %s: %s", url, res.Status, bytes.TrimSpace(raw))
		if res.StatusCode >= 500 || res.StatusCode == http.StatusTooManyRequests {
			return httpapi.Response{}, retryAfter, err
		}
		return httpapi.Response{}, 0, permanentError{err}
	}
	var r httpapi.Response
	if err := json.Unmarshal(raw, &r); err != nil || (r.Accepted+r.Duplicates+r.Rejected+r.Failed == 0 && res.StatusCode != http.StatusAccepted) {
		// A 400 about the body as a whole ({"error": ...}) cannot get better by resending.
		return httpapi.Response{}, 0, permanentError{fmt.Errorf("POST %s: %s: %s", url, res.Status, bytes.TrimSpace(raw))}
	}
	if r.Failed > 0 {
		return httpapi.Response{}, retryAfter, fmt.Errorf("POST %s: %d events not stored yet", url, r.Failed)
	}
	return r, 0, nil
}
