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
// Several batches are in flight at once (Options.InFlight); their answers may come in
// any order, but they are counted, reported and saved in the order of the file.
//
// Resumable: once a batch and every batch before it were answered for every event, the
// byte offset and line after it are written to a state file, with the counts and the
// error report up to there; an interrupted import run again with the same file and
// mapping continues from there (the batches in flight when it stopped, and those
// answered after one still in flight, are sent again, which their ids make harmless).
// A completed import removes its state file.
package importer

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/httpapi"
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
	// InFlight is the number of requests sent at once (default DefaultInFlight): while
	// the API stores one batch (with one sync) the next ones are read, validated and
	// sent, so that it need not wait for them.
	InFlight int
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

// DefaultInFlight is the default of Options.InFlight. One request at a time, the API
// idles while the importer reads the next batch and the request travels; two to four
// kept a loaded 2-core machine busy (deploy/local/bench.sh); eight gained nothing.
// Four also hide the latency of an API across a network, and leave most of its
// CXLINK_MAX_CONCURRENT_REQUESTS (32) to live senders while an import runs.
const DefaultInFlight = 4

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
	if o.InFlight <= 0 {
		o.InFlight = DefaultInFlight
	}
	if o.Client.HTTP == nil {
		// One kept-alive connection per request in flight (Go keeps 2 by default).
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = o.InFlight
		o.Client.HTTP = &http.Client{Timeout: 2 * time.Minute, Transport: t}
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

// run is one import in progress. Only loop's goroutine touches it; a request in flight
// owns its batch until it hands it back on done.
type run struct {
	opts      Options
	st        *state
	report    *report
	rd        reader
	validator event.Validator
	bar       *bar
	// window holds the batches sent and not yet committed, oldest first: at most
	// opts.InFlight, so that a stop resends at most that many and memory stays bounded.
	window   []*batch
	inflight int
	done     chan *batch
	seq      int
	// readEnd and readNext are the offset and line after the last row read.
	readEnd  int64
	readNext int
	// lastSeq is the batch that ends the file; complete, that it was committed.
	lastSeq  int
	complete bool
}

// pending is an event waiting in the batch, with the row it came from.
type pending struct {
	line  int
	name  string
	event json.RawMessage
	id    string
}

// batch is the events of consecutive rows and what became of them. Its counts and
// problems reach the state, the report and the bar only once every batch before it is
// answered too (commit): a saved state never counts a row that a resumed import reads
// again, and the report never lists one twice.
type batch struct {
	seq      int
	events   []pending
	end      int64 // offset just after the batch's last row
	next     int   // the line after it
	stats    Stats
	problems [][]string // report lines: line, event, id, field, reason
	answered bool
	resp     httpapi.Response
	err      error
}

func (b *batch) reject(line int, name, id string, errs event.Errors) {
	b.stats.Rejected++
	for _, fe := range errs {
		b.problems = append(b.problems, []string{strconv.Itoa(line), name, id, fe.Field, fe.Message})
	}
}

func (im *run) loop(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	im.done = make(chan *batch, im.opts.InFlight)
	im.readEnd, im.readNext = im.st.Offset, im.st.Line
	err := im.read(ctx)
	if err != nil {
		cancel() // what the requests in flight leave unanswered is sent again on resume
	}
	for im.inflight > 0 {
		if werr := im.collect(true); werr != nil && err == nil {
			err = werr
			cancel()
		}
	}
	if parent.Err() != nil && !im.complete && (err == nil || errors.Is(err, context.Canceled)) {
		err = fmt.Errorf("%w at line %d: run the same command again to resume", ErrInterrupted, im.st.Line)
	}
	return err
}

// read reads the rows into batches and sends each.
func (im *run) read(ctx context.Context) error {
	b := im.newBatch()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := im.collect(false); err != nil {
			return err
		}
		rec, err := im.rd.next()
		if errors.Is(err, io.EOF) {
			im.lastSeq = b.seq
			return im.dispatch(ctx, b)
		}
		if err != nil {
			return err
		}
		b.stats.Rows++
		b.end, b.next = rec.end, rec.next
		im.readEnd, im.readNext = rec.end, rec.next
		if rec.err != nil {
			b.stats.BadRows++
			b.problems = append(b.problems, []string{strconv.Itoa(rec.line), "", "", "(row)", rec.err.Error()})
		} else {
			im.events(b, rec)
		}
		if len(b.events) >= im.opts.BatchSize {
			if err := im.dispatch(ctx, b); err != nil {
				return err
			}
			b = im.newBatch()
		}
	}
}

func (im *run) newBatch() *batch {
	im.seq++
	return &batch{seq: im.seq, end: im.readEnd, next: im.readNext}
}

// dispatch sends b once the window has room for it. A batch without events (bad rows
// only, or the end of the file) is answered at once.
func (im *run) dispatch(ctx context.Context, b *batch) error {
	for len(im.window) >= im.opts.InFlight && im.inflight > 0 {
		if err := im.collect(true); err != nil {
			return err
		}
	}
	im.window = append(im.window, b)
	if len(b.events) == 0 {
		b.answered = true
		return im.commit()
	}
	im.inflight++
	go func() {
		var body bytes.Buffer
		for _, p := range b.events {
			body.Write(p.event)
			body.WriteByte('\n')
		}
		b.resp, b.err = im.opts.Client.Post(ctx, body.Bytes())
		im.done <- b
	}()
	return nil
}

// collect takes the answers of the requests that finished (waiting for one if wait) and
// commits the batches they complete. A batch whose request failed stays unanswered in
// the window, so that nothing after it is committed.
func (im *run) collect(wait bool) error {
	for {
		var b *batch
		if wait {
			b = <-im.done
			wait = false
		} else {
			select {
			case b = <-im.done:
			default:
				return nil
			}
		}
		im.inflight--
		if b.err != nil {
			return b.err
		}
		if err := im.settle(b); err != nil {
			return err
		}
		b.answered = true
		if err := im.commit(); err != nil {
			return err
		}
	}
}

// settle counts the API's answer about each event of b.
func (im *run) settle(b *batch) error {
	notAccepted := map[int]bool{}
	for _, r := range b.resp.Results {
		if r.Index < 0 || r.Index >= len(b.events) {
			return fmt.Errorf("the API answered about event %d of a batch of %d", r.Index, len(b.events))
		}
		p := b.events[r.Index]
		notAccepted[r.Index] = true
		switch r.Status {
		case "duplicate":
			b.stats.Duplicates++
		case "rejected":
			b.reject(p.line, p.name, p.id, r.Errors)
		default:
			return fmt.Errorf("the API answered %q for event %s (line %d)", r.Status, p.id, p.line)
		}
	}
	b.stats.Accepted += len(b.events) - len(notAccepted)
	return nil
}

// commit applies the answered batches at the head of the window, in order: their counts
// and problems, and the offset after them, which the state file then holds.
func (im *run) commit() error {
	n := 0
	for _, b := range im.window {
		if !b.answered {
			break
		}
		n++
		s := &im.st.Stats
		s.Rows += b.stats.Rows
		s.BadRows += b.stats.BadRows
		s.Events += b.stats.Events
		s.Accepted += b.stats.Accepted
		s.Duplicates += b.stats.Duplicates
		s.Rejected += b.stats.Rejected
		s.Skipped += b.stats.Skipped
		for _, p := range b.problems {
			im.report.add(p)
		}
		im.st.Offset, im.st.Line = b.end, b.next
		if b.seq == im.lastSeq {
			im.complete = true
		}
	}
	if n == 0 {
		return nil
	}
	im.window = slices.Delete(im.window, 0, n)
	im.bar.update(im.st.Stats, im.st.Offset)
	return im.saveState()
}

// events builds and validates the events of one row into b; the invalid ones go to its
// problems.
func (im *run) events(b *batch, rec record) {
	if im.opts.Mapping == nil { // NDJSON lines that are contract events
		b.stats.Events++
		e, errs := im.validator.Decode(rec.json)
		if len(errs) > 0 {
			b.reject(rec.line, "event", peekID(rec.json), errs)
			return
		}
		raw, _ := json.Marshal(e)
		b.events = append(b.events, pending{line: rec.line, name: "event", event: raw, id: e.ID})
		return
	}
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
			b.stats.Skipped++
			continue
		}
		b.stats.Events++
		if len(errs) == 0 {
			errs = im.validator.Validate(&e)
		}
		if len(errs) > 0 {
			b.reject(rec.line, t.Name, e.ID, errs)
			continue
		}
		raw, _ := json.Marshal(e)
		b.events = append(b.events, pending{line: rec.line, name: t.Name, event: raw, id: e.ID})
	}
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

func (r *report) add(line []string) {
	r.n++
	r.w.Write(line)
}

func (r *report) flush() error {
	r.w.Flush()
	return r.w.Error()
}

func (r *report) close() {
	r.flush()
	r.f.Close()
}
