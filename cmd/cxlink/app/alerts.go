package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cxlink/cxlink/ingest/httpapi"
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
	mux.Handle("/", AlertReceiver{Notify: func(path string, n AlertNotification) {
		mu.Lock()
		defer mu.Unlock()
		formatNotification(opts.Stdout, path, n)
	}})
	if err := httpapi.Serve(ctx, ln, mux, logger); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
