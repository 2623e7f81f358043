package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/importer"
)

const importUsage = `Usage: cxlink import [flags] FILE

Imports a CSV or NDJSON export through the ingest API (--target). Each row becomes the
events of a mapping: --mapping FILE (YAML, see deploy/import/), or one event from flags:

  cxlink import --source hr-pulse --type employee_pulse --key response_id \
    --field occurred_at={submitted} --field employee_id={employee} --field team={team} \
    --field question=engagement --field score={q1} pulse-export.csv

Without a mapping, CSV columns must be contract fields (id, type, occurred_at, ...) and
NDJSON lines contract events. Bad rows are listed with line and reason in the report
(--report); an interrupted import resumes when run again; importing a file twice stores
nothing twice.

Ids derived from rows are keyed (HMAC-SHA256) with CXLINK_IMPORT_ID_KEY, or the key in
--id-key-file: employee pulses need one, so that nobody can recompute an id from an
employee directory. Keep the key: the same file imported with another gets other ids.

Flags:
`

// fieldFlags collects repeated --field name=template flags.
type fieldFlags map[string]string

func (f fieldFlags) String() string { return "" }

func (f fieldFlags) Set(s string) error {
	name, tmpl, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("%q is not name=template", s)
	}
	f[strings.TrimSpace(name)] = tmpl
	return nil
}

type headerFlags http.Header

func (h headerFlags) String() string { return "" }

func (h headerFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, ":")
	if !ok {
		return fmt.Errorf("%q is not Name: value", s)
	}
	http.Header(h).Add(strings.TrimSpace(k), strings.TrimSpace(v))
	return nil
}

func runImport(ctx context.Context, args []string, opts Options) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(opts.Stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), importUsage)
		fs.PrintDefaults()
	}
	target := fs.String("target", "http://127.0.0.1:8080", "base URL of the ingest API")
	format := fs.String("format", "", "csv or ndjson (default: from the file name)")
	mappingPath := fs.String("mapping", "", "mapping file (YAML)")
	source := fs.String("source", "", "without --mapping: source of the events and namespace of their ids")
	typ := fs.String("type", "", "without --mapping: survey_response, ticket or employee_pulse")
	fields := fieldFlags{}
	fs.Var(fields, "field", "without --mapping: a contract field and its template, e.g. score={rating} (repeatable)")
	key := fs.String("key", "", "without --mapping: comma-separated columns that identify a row (default: the whole row)")
	timeFormat := fs.String("time-format", "", "without --mapping: Go layout of timestamps, or rfc3339, unix, unix_ms")
	timeZone := fs.String("time-zone", "", "without --mapping: zone of timestamps that have none (default UTC)")
	batch := fs.Int("batch", 1000, "events per request")
	inFlight := fs.Int("in-flight", importer.DefaultInFlight, "requests sent at once (the state advances past a batch once it and every one before it are answered)")
	statePath := fs.String("state", "", "resume state file (default: NAME.import-state.json in the current directory)")
	reportPath := fs.String("report", "", "error report, CSV (default: NAME.import-errors.csv in the current directory)")
	restart := fs.Bool("restart", false, "ignore a saved state and import from the first row")
	quiet := fs.Bool("quiet", false, "no progress bar")
	idKeyFile := fs.String("id-key-file", "", "file holding the key of derived ids (default: CXLINK_IMPORT_ID_KEY)")
	header := headerFlags{}
	fs.Var(header, "header", "HTTP header for every request, e.g. \"Authorization: Bearer …\" (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("import: give exactly one FILE")
	}
	path := fs.Arg(0)

	var m *importer.Mapping
	var err error
	switch {
	case *mappingPath != "" && (*typ != "" || len(fields) > 0):
		return errors.New("import: give --mapping or --type with --field, not both")
	case *mappingPath != "":
		if m, err = importer.LoadMapping(*mappingPath); err != nil {
			return err
		}
	case *typ != "" || len(fields) > 0:
		if m, err = flagMapping(*source, *typ, fields, *key, *timeFormat, *timeZone); err != nil {
			return err
		}
	}

	progress, interactive := opts.Stderr, false
	if f, ok := opts.Stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			interactive = true
		}
	}
	if *quiet {
		progress = nil
	}
	idKey := opts.Environ["CXLINK_IMPORT_ID_KEY"]
	if *idKeyFile != "" {
		b, err := os.ReadFile(*idKeyFile)
		if err != nil {
			return fmt.Errorf("import: --id-key-file: %w", err)
		}
		idKey = strings.TrimRight(string(b), "\r\n")
	}
	client := &importer.Client{Header: http.Header(header)}
	o := importer.Options{
		Path: path, Format: importer.Format(*format), Mapping: m, Target: *target, Client: client,
		BatchSize: *batch, InFlight: *inFlight, StatePath: *statePath, ReportPath: *reportPath, Restart: *restart,
		Progress: progress, Interactive: interactive, IDKey: []byte(idKey),
	}
	start := time.Now()
	stats, err := importer.Run(ctx, o)
	took := time.Since(start)
	if stats.ResumedAt > 0 {
		fmt.Fprintf(opts.Stdout, "resumed at line %d\n", stats.ResumedAt)
	}
	report := o.ReportPath
	if report == "" {
		report = filepath.Base(path) + ".import-errors.csv"
	}
	fmt.Fprintf(opts.Stdout, "%s: %d rows (%d unreadable), %d events: %d accepted, %d duplicates, %d rejected, %d skipped (empty); %d rows in %s, %.0f rows/s\n",
		path, stats.Rows, stats.BadRows, stats.Events, stats.Accepted, stats.Duplicates, stats.Rejected, stats.Skipped,
		stats.Rows-stats.ResumedRows, took.Round(100*time.Millisecond), float64(stats.Rows-stats.ResumedRows)/took.Seconds())
	if stats.Rejected+stats.BadRows > 0 {
		fmt.Fprintf(opts.Stdout, "problems, by line: %s\n", report)
	}
	return err
}

// flagMapping builds a one-event mapping from flags.
func flagMapping(source, typ string, fields fieldFlags, key, timeFormat, timeZone string) (*importer.Mapping, error) {
	if source == "" || typ == "" {
		return nil, errors.New("import: --source and --type are required with --field")
	}
	t := importer.Template{Type: event.Type(typ), Fields: map[string]importer.Value{}}
	for name, tmpl := range fields {
		t.Fields[name] = importer.Value{Text: tmpl}
	}
	m := &importer.Mapping{Source: source, TimeFormat: timeFormat, TimeZone: timeZone, Events: []importer.Template{t}}
	if key != "" {
		for _, k := range strings.Split(key, ",") {
			m.Key = append(m.Key, strings.TrimSpace(k))
		}
	}
	if err := m.Compile(); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	return m, nil
}
