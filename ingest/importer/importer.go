// Package importer imports CSV and NDJSON exports (helpdesk tickets and ratings, HR pulse
// surveys) into cxlink through the ingest API, as `cxlink import` does.
//
// Each row becomes the events of a Mapping, each validated against contract v1 before it
// is sent; a row or event that does not fit is written to the error report with its line
// number and the reason, naming the field, and the import goes on. Events are posted as
// NDJSON batches to POST /v1/events, so that an import passes the same validation,
// authentication and deduplication as any other sender, needs no access to NATS, and
// can run from anywhere the API is reachable.
//
// Idempotent: event ids come from the row (the mapping's id, else a hash of the source,
// the template's name and the row's key columns), so importing the same file twice
// stores nothing twice: JetStream answers "duplicate" inside its duplicate window, and
// the raw tables keep one row per id under FINAL after it.
//
// Resumable: after each batch the API acknowledged, the byte offset and line reached are
// written to a state file; an interrupted import run again with the same file and
// mapping continues from there (a batch in flight when it stopped is sent again, which
// its ids make harmless). A completed import removes its state file.
package importer

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
)

// Options of an import.
type Options struct {
	// Path of the input file; Format csv or ndjson (default: from the extension).
	Path   string
	Format Format
	// Mapping of rows to events. Nil: the rows are contract events already (CSV columns
	// named as contract fields; NDJSON lines as POST /v1/events takes them).
	Mapping *Mapping
	// IDKey keys the ids derived from rows (HMAC-SHA256): without it nobody can
	// recompute an id from the row's values, such as an employee directory's. Required
	// for a mapping that derives the ids of employee pulses (at least MinIDKeyLength
	// bytes); keep it, since the same file imported with another key gets other ids.
	IDKey []byte
	// Target is the base URL of the ingest API; Client posts to it.
	Target string
	Client *Client
	// BatchSize is the number of events per request.
	BatchSize int
	// StatePath and ReportPath default to the input file's name + ".import-state.json" and
	// ".import-errors.csv" in the current directory (the input may be read-only).
	StatePath, ReportPath string
	// Restart ignores (and replaces) an existing state file.
	Restart bool
	// Progress receives the progress bar (nil: none); Interactive redraws one line.
	Progress    io.Writer
	Interactive bool
	// Now is the clock events are validated against (default time.Now); MaxFuture the
	// allowed clock skew (default 5m, as the API's).
	Now       func() time.Time
	MaxFuture time.Duration
}

// Stats of an import, including the parts done before a resume.
type Stats struct {
	Rows       int `json:"rows"`
	BadRows    int `json:"bad_rows"`
	Events     int `json:"events"`
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
	Skipped    int `json:"skipped"`
	// ResumedAt is the line a resumed import continued from (0: from the start), and
	// ResumedRows the rows read before it.
	ResumedAt   int `json:"-"`
	ResumedRows int `json:"-"`
}

// state is what a resumed import needs.
type state struct {
	Path        string    `json:"path"`
	Size        int64     `json:"size"`
	ModTime     time.Time `json:"mod_time"`
	MappingHash string    `json:"mapping"`
	Offset      int64     `json:"offset"`
	Line        int       `json:"line"`
	Stats       Stats     `json:"stats"`
}

// ErrInterrupted is returned when ctx ended before the end of the file; the state file
// says where to continue.
var ErrInterrupted = errors.New("import interrupted")

// Run imports opts.Path.
func Run(ctx context.Context, opts Options) (Stats, error) {
	if err := opts.defaults(); err != nil {
		return Stats{}, err
	}
	f, err := os.Open(opts.Path)
	if err != nil {
		return Stats{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Stats{}, err
	}
	abs, _ := filepath.Abs(opts.Path)
	st := state{Path: abs, Size: fi.Size(), ModTime: fi.ModTime().UTC(), MappingHash: opts.mappingHash()}
	if !opts.Restart {
		if prev, ok, err := loadState(opts.StatePath); err != nil {
			return Stats{}, err
		} else if ok {
			if prev.Path != st.Path || prev.Size != st.Size || !prev.ModTime.Equal(st.ModTime) || prev.MappingHash != st.MappingHash {
				return Stats{}, fmt.Errorf("%s is the state of an import of another file, version of the file or mapping: "+
					"run with --restart to import from the start (event ids keep that safe), or remove it", opts.StatePath)
			}
			st.Offset, st.Line, st.Stats = prev.Offset, prev.Line, prev.Stats
			st.Stats.ResumedAt, st.Stats.ResumedRows = prev.Line, prev.Stats.Rows
		}
	}
	rd, header, err := opts.open(f, st.Offset, st.Line)
	if err != nil {
		return st.Stats, err
	}
	if opts.Mapping == nil && opts.Format == CSV {
		if opts.Mapping, err = columnsMapping(header); err != nil {
			return st.Stats, err
		}
	}
	report, err := openReport(opts.ReportPath, st.Offset > 0)
	if err != nil {
		return st.Stats, err
	}
	defer report.close()

	im := &run{opts: opts, st: &st, report: report, rd: rd,
		validator: event.Validator{Now: opts.Now, MaxFuture: opts.MaxFuture},
		bar:       newBar(opts.Progress, opts.Interactive, fi.Size(), st.Offset, st.Stats.Rows)}
	err = im.loop(ctx)
	im.bar.done(st.Stats, st.Offset)
	if err != nil {
		return st.Stats, err
	}
	if err := os.Remove(opts.StatePath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return st.Stats, err
	}
	return st.Stats, nil
}

func (o *Options) defaults() error {
	if o.Format == "" {
		switch filepath.Ext(o.Path) {
		case ".ndjson", ".jsonl":
			o.Format = NDJSON
		default:
			o.Format = CSV
		}
	}
	if o.Format != CSV && o.Format != NDJSON {
		return fmt.Errorf("format %q is not csv or ndjson", o.Format)
	}
	if o.Mapping != nil {
		if err := o.Mapping.useIDKey(o.IDKey); err != nil {
			return err
		}
	}
	if o.Client == nil {
		o.Client = &Client{}
	}
	o.Client.Target = o.Target
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	if o.StatePath == "" {
		o.StatePath = filepath.Base(o.Path) + ".import-state.json"
	}
	if o.ReportPath == "" {
		o.ReportPath = filepath.Base(o.Path) + ".import-errors.csv"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxFuture == 0 {
		o.MaxFuture = 5 * time.Minute
	}
	return nil
}

func (o *Options) mappingHash() string {
	if o.Mapping == nil {
		return "contract-v1"
	}
	return o.Mapping.Hash() + o.Mapping.keyFingerprint()
}

func (o *Options) open(f *os.File, offset int64, line int) (reader, []string, error) {
	if o.Format == NDJSON {
		r, err := openNDJSON(f, offset, line)
		return r, nil, err
	}
	return openCSV(f, offset, line)
}

// columnsMapping is the mapping of a CSV whose columns are named as contract fields.
func columnsMapping(header []string) (*Mapping, error) {
	m := &Mapping{Source: "import", Events: []Template{{Name: "event", Fields: map[string]Value{}}}}
	t := &m.Events[0]
	for _, h := range header {
		switch {
		case h == "type":
		case containsString(contractFields, h):
			t.Fields[h] = Value{Text: "{" + h + "}"}
		default:
			return nil, fmt.Errorf("column %q is not a contract field: give a mapping (--mapping or --field) for this export", h)
		}
	}
	if _, ok := t.Fields["id"]; !ok {
		return nil, errors.New("without a mapping the CSV needs the columns of contract v1, at least id, type and occurred_at")
	}
	t.Type = "{type}" // filled per row, see build
	return m, m.compileLoose()
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// compileLoose prepares a mapping built in code whose type comes from a column.
func (m *Mapping) compileLoose() error {
	var err error
	m.loc, err = time.LoadLocation("UTC")
	return err
}

// run is one import in progress.
type run struct {
	opts      Options
	st        *state
	report    *report
	rd        reader
	validator event.Validator
	bar       *bar
}

// pending is an event waiting in the batch, with the row it came from.
type pending struct {
	line  int
	name  string
	event json.RawMessage
	id    string
}

func (im *run) loop(ctx context.Context) error {
	var batch []pending
	lastEnd, nextLine := im.st.Offset, im.st.Line
	flush := func() error {
		if len(batch) > 0 {
			if err := im.send(ctx, batch); err != nil {
				return err
			}
		}
		batch = batch[:0]
		im.st.Offset, im.st.Line = lastEnd, nextLine
		im.bar.update(im.st.Stats, im.st.Offset)
		return im.saveState()
	}
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w at line %d: run the same command again to resume", ErrInterrupted, im.st.Line)
		}
		rec, err := im.rd.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		im.st.Stats.Rows++
		lastEnd, nextLine = rec.end, rec.next
		if rec.err != nil {
			im.st.Stats.BadRows++
			im.report.add(rec.line, "", "", "(row)", rec.err.Error())
		} else {
			batch = append(batch, im.events(rec)...)
		}
		if len(batch) >= im.opts.BatchSize {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// events builds and validates the events of one row; the invalid ones go to the report.
func (im *run) events(rec record) []pending {
	if im.opts.Mapping == nil { // NDJSON lines that are contract events
		im.st.Stats.Events++
		e, errs := im.validator.Decode(rec.json)
		if len(errs) > 0 {
			im.reject(rec.line, "event", peekID(rec.json), errs)
			return nil
		}
		b, _ := json.Marshal(e)
		return []pending{{line: rec.line, name: "event", event: b, id: e.ID}}
	}
	var out []pending
	m := im.opts.Mapping
	for i := range m.Events {
		t := &m.Events[i]
		if t.Type == "{type}" { // a CSV of contract columns: the type is a column
			typ, _ := rec.row.get("type")
			tt := *t
			tt.Type = event.Type(typ)
			t = &tt
		}
		e, ok, errs := m.build(t, rec.row)
		if !ok {
			im.st.Stats.Skipped++
			continue
		}
		im.st.Stats.Events++
		if len(errs) == 0 {
			errs = im.validator.Validate(&e)
		}
		if len(errs) > 0 {
			im.reject(rec.line, t.Name, e.ID, errs)
			continue
		}
		b, _ := json.Marshal(e)
		out = append(out, pending{line: rec.line, name: t.Name, event: b, id: e.ID})
	}
	return out
}

func (im *run) reject(line int, name, id string, errs event.Errors) {
	im.st.Stats.Rejected++
	for _, fe := range errs {
		im.report.add(line, name, id, fe.Field, fe.Message)
	}
}

// send posts a batch until the API has answered for every event.
func (im *run) send(ctx context.Context, batch []pending) error {
	var body bytes.Buffer
	for _, p := range batch {
		body.Write(p.event)
		body.WriteByte('\n')
	}
	resp, err := im.opts.Client.Post(ctx, body.Bytes())
	if err != nil {
		return err
	}
	notAccepted := map[int]bool{}
	for _, r := range resp.Results {
		if r.Index < 0 || r.Index >= len(batch) {
			return fmt.Errorf("the API answered about event %d of a batch of %d", r.Index, len(batch))
		}
		p := batch[r.Index]
		notAccepted[r.Index] = true
		switch r.Status {
		case "duplicate":
			im.st.Stats.Duplicates++
		case "rejected":
			im.reject(p.line, p.name, p.id, r.Errors)
		default:
			return fmt.Errorf("the API answered %q for event %s (line %d)", r.Status, p.id, p.line)
		}
	}
	im.st.Stats.Accepted += len(batch) - len(notAccepted)
	return nil
}

func peekID(raw []byte) string {
	var v struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &v)
	return v.ID
}

func loadState(path string) (state, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return state{}, false, nil
	}
	if err != nil {
		return state{}, false, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return state{}, false, fmt.Errorf("state file %s: %v (remove it, or use --restart)", path, err)
	}
	return st, true, nil
}

// saveState writes the state atomically: a crash leaves the old or the new one.
func (im *run) saveState() error {
	b, _ := json.MarshalIndent(im.st, "", "  ")
	tmp := im.opts.StatePath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("writing the state file: %w (choose another place with --state)", err)
	}
	if err := im.report.flush(); err != nil {
		return err
	}
	return os.Rename(tmp, im.opts.StatePath)
}

// report is the CSV of every problem: line, event, id, field, reason.
type report struct {
	f *os.File
	w *csv.Writer
	n int
}

func openReport(path string, appendTo bool) (*report, error) {
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendTo {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("error report: %w (choose another place with --report)", err)
	}
	r := &report{f: f, w: csv.NewWriter(f)}
	if fi, _ := f.Stat(); fi != nil && fi.Size() == 0 {
		r.w.Write([]string{"line", "event", "id", "field", "reason"})
	}
	return r, nil
}

func (r *report) add(line int, name, id, field, reason string) {
	r.n++
	r.w.Write([]string{strconv.Itoa(line), name, id, field, reason})
}

func (r *report) flush() error {
	r.w.Flush()
	return r.w.Error()
}

func (r *report) close() {
	r.flush()
	r.f.Close()
}
