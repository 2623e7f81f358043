package app

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cxlink/cxlink/ingest/httpapi"
	"github.com/cxlink/cxlink/processors/followup"
)

// AlertNotification is the body Alertmanager posts to a webhook receiver (version 4).
type AlertNotification struct {
	Version           string            `json:"version"`
	Receiver          string            `json:"receiver"`
	Status            string            `json:"status"` // firing, resolved
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
		EndsAt      time.Time         `json:"endsAt"`
	} `json:"alerts"`
}

// AlertReceiver is an Alertmanager webhook: every notification POSTed to any path is
// decoded and handed to Notify with the path (e.g. /product for the product receiver).
type AlertReceiver struct {
	Notify func(path string, n AlertNotification)
}

func (a AlertReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		http.Error(w, "POST an Alertmanager webhook notification", http.StatusMethodNotAllowed)
		return
	}
	var n AlertNotification
	if err := json.NewDecoder(io.LimitReader(req.Body, 1<<20)).Decode(&n); err != nil {
		http.Error(w, "not an Alertmanager notification: "+err.Error(), http.StatusBadRequest)
		return
	}
	a.Notify(req.URL.Path, n)
}

// formatNotification writes what on-call reads: one line per alert with its owner and
// series, then its summary and description.
func formatNotification(w io.Writer, path string, n AlertNotification) {
	fmt.Fprintf(w, "── %s  %s → receiver %q (%s), %d alert(s)\n", time.Now().UTC().Format(time.RFC3339), path,
		n.Receiver, strings.ToUpper(n.Status), len(n.Alerts))
	for _, a := range n.Alerts {
		var labels []string
		for k, v := range a.Labels {
			if k != "alertname" {
				labels = append(labels, k+"="+v)
			}
		}
		sort.Strings(labels)
		fmt.Fprintf(w, "  %-8s %s {%s}\n", strings.ToUpper(a.Status), a.Labels["alertname"], strings.Join(labels, ", "))
		if s := a.Annotations["summary"]; s != "" {
			fmt.Fprintf(w, "           %s\n", s)
		}
		if d := a.Annotations["description"]; d != "" {
			fmt.Fprintf(w, "           %s\n", strings.ReplaceAll(strings.TrimSpace(d), "\n", "\n           "))
		}
		if r := a.Annotations["runbook"]; r != "" {
			fmt.Fprintf(w, "           runbook: %s\n", r)
		}
	}
}

// runAlertsReceiver serves the webhook and prints every notification: on-call's view in
// the demo.
func runAlertsReceiver(ctx context.Context, args []string, opts Options) error {
	fs := flag.NewFlagSet("alerts-receiver", flag.ContinueOnError)
	fs.SetOutput(opts.Stderr)
	listen := fs.String("listen", "127.0.0.1:19094", "host:port to receive Alertmanager webhooks on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Follow-up deliveries are checked with the secret cxlink signs them with.
	secret := []byte(opts.Environ["CXLINK_FOLLOWUP_WEBHOOK_SECRET"])
	if file := opts.Environ["CXLINK_FOLLOWUP_WEBHOOK_SECRET_FILE"]; file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("CXLINK_FOLLOWUP_WEBHOOK_SECRET_FILE: %w", err)
		}
		secret = bytes.TrimRight(b, "\r\n")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(opts.Stderr, nil)).With("component", "alerts-receiver")
	logger.Info("waiting for Alertmanager notifications", "url", "http://"+ln.Addr().String()+"/<receiver>")
	if opts.Listening != nil {
		opts.Listening(ln.Addr().String())
	}
	var mu sync.Mutex
	mux := http.NewServeMux()
	alerts := AlertReceiver{Notify: func(path string, n AlertNotification) {
		mu.Lock()
		defer mu.Unlock()
		formatNotification(opts.Stdout, path, n)
	}}
	cases := FollowUpReceiver{Secret: secret, Notify: func(path string, p followup.Payload) {
		mu.Lock()
		defer mu.Unlock()
		formatFollowUp(opts.Stdout, path, p)
	}}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(followup.HeaderEvent) != "" {
			cases.ServeHTTP(w, r)
			return
		}
		alerts.ServeHTTP(w, r)
	})
	if err := httpapi.Serve(ctx, ln, mux, logger); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// FollowUpReceiver is an owner's follow-up webhook: it checks a delivery's signature
// with Secret, as docs/followups.md tells receivers to, and hands on the case.
type FollowUpReceiver struct {
	Secret []byte
	Notify func(path string, p followup.Payload)
}

func (f FollowUpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if len(f.Secret) == 0 {
		http.Error(w, "follow-up deliveries need the webhook secret: set CXLINK_FOLLOWUP_WEBHOOK_SECRET or _FILE", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil || req.Method != http.MethodPost {
		http.Error(w, "POST a follow-up delivery", http.StatusBadRequest)
		return
	}
	want := followup.Sign(f.Secret, req.Header.Get(followup.HeaderTimestamp), body)
	if !hmac.Equal([]byte(want), []byte(req.Header.Get(followup.HeaderSignature))) {
		http.Error(w, "bad "+followup.HeaderSignature, http.StatusUnauthorized)
		return
	}
	var p followup.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, "not a follow-up delivery: "+err.Error(), http.StatusBadRequest)
		return
	}
	f.Notify(req.URL.Path, p)
}

// formatFollowUp writes what the owner reads of a new case.
func formatFollowUp(w io.Writer, path string, p followup.Payload) {
	c := p.Case
	fmt.Fprintf(w, "── %s  %s → follow-up case %s for %s, due %s\n", time.Now().UTC().Format(time.RFC3339), path,
		c.ID, c.Owner, c.DueAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  %s %g (rule %s)  customer %s  ticket %s  category %s  team %s  agent %s  channel %s\n",
		strings.ToUpper(c.Survey), c.Score, c.Rule, c.CustomerID, c.TicketID, c.Category, c.Team, c.AgentID, c.Channel)
	if c.Comment != "" {
		fmt.Fprintf(w, "  %q\n", c.Comment)
	}
	if len(p.History) > 0 {
		fmt.Fprintf(w, "  %d earlier answers of the customer:", len(p.History))
		for _, a := range p.History {
			fmt.Fprintf(w, " %s %g (%s)", strings.ToUpper(a.Survey), a.StandardScore, a.OccurredAt.UTC().Format(time.DateOnly))
		}
		fmt.Fprintln(w)
	}
}
