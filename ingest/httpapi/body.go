package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/cxlink/cxlink/ingest/admit"
	"github.com/cxlink/cxlink/ingest/event"
)

func badBody(format string, args ...any) *admit.Refusal {
	return admit.Refuse(http.StatusBadRequest, format, args...)
}

// batch is a request body read and decoded, event by event: the items for admission,
// in body order. Each event is decoded and validated on its own; its raw bytes are not
// kept.
type batch struct {
	d     admit.Decoding
	items []admit.Item
}

// add decodes and validates one event; line is its NDJSON line (0 outside NDJSON).
func (b *batch) add(raw []byte, line int) *admit.Refusal {
	if len(b.items) == b.d.MaxEvents {
		return admit.Refuse(http.StatusRequestEntityTooLarge,
			"more than %d events in one request: split them into smaller requests", b.d.MaxEvents)
	}
	it := admit.Item{Index: len(b.items), Line: line}
	e, errs := b.d.Validator.Decode(raw)
	if len(errs) == 0 {
		it.Event, it.Validated = &e, true
	} else {
		if line > 0 {
			for i := range errs {
				if errs[i].Field == eventField {
					errs[i].Message = fmt.Sprintf("line %d: %s", line, errs[i].Message)
				}
			}
		}
		it.Errors, it.ID = errs, peekID(raw)
	}
	b.items = append(b.items, it)
	return nil
}

// eventField is the field name ingest/event gives to problems with a whole event.
const eventField = "(event)"

// peekID returns the id of an event that failed validation, when it has a usable one, so
// that the sender can find the event it sent.
func peekID(raw []byte) string {
	var v struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(raw, &v) != nil || len(v.ID) == 0 || v.ID[0] != '"' {
		return ""
	}
	var id string
	if json.Unmarshal(v.ID, &id) != nil || len(id) > event.MaxIDLength {
		return ""
	}
	return id
}

// readNDJSON reads one event per line; blank lines are skipped. A line that is not a
// valid event rejects that line only.
func (b *batch) readNDJSON(r io.Reader) *admit.Refusal {
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte // a line longer than br's buffer
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil && err != io.EOF {
			return readError(err)
		}
		if lineNo == 1 {
			line = bytes.TrimPrefix(line, utf8BOM)
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			if be := b.add(line, lineNo); be != nil {
				return be
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

var utf8BOM = []byte("\xef\xbb\xbf")

// readJSON reads one JSON object or a JSON array of them, element by element so that the
// body is never held whole. A syntax error makes the whole body unreadable.
func (b *batch) readJSON(r io.Reader) *admit.Refusal {
	br := bufio.NewReader(r)
	// Skipped leading bytes: the decoder's offsets start after them.
	var base int64
	if p, _ := br.Peek(len(utf8BOM)); bytes.Equal(p, utf8BOM) {
		br.Discard(len(utf8BOM))
		base += int64(len(utf8BOM))
	}
	n, err := skipSpace(br)
	base += n
	if err == io.EOF {
		return nil // empty: the caller reports that there are no events
	}
	if err != nil {
		return readError(err)
	}
	first, _ := br.Peek(1)
	dec := json.NewDecoder(br)
	switch first[0] {
	case '{':
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return jsonError(err, dec, base, "object")
		}
		if be := trailing(dec, br, base, "object"); be != nil {
			return be
		}
		return b.add(raw, 0)
	case '[':
		if _, err := dec.Token(); err != nil {
			return jsonError(err, dec, base, "array")
		}
		for dec.More() {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return jsonError(err, dec, base, "array")
			}
			if be := b.add(raw, 0); be != nil {
				return be
			}
		}
		if _, err := dec.Token(); err != nil { // the closing bracket
			return jsonError(err, dec, base, "array")
		}
		return trailing(dec, br, base, "array")
	default:
		return badBody("the body must be a JSON object, a JSON array of objects, or NDJSON sent with "+
			"Content-Type: application/x-ndjson; it starts with %q at byte offset %d", first[0], base)
	}
}

// jsonError describes why dec could not read a value. base is the body offset at which
// dec started reading.
func jsonError(err error, dec *json.Decoder, base int64, what string) *admit.Refusal {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return readError(err)
	}
	start := base + dec.InputOffset() // where the value that failed starts
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		rest, _ := io.Copy(io.Discard, dec.Buffered())
		return badBody("invalid JSON: the body ends inside the JSON %s at byte offset %d (truncated, or a missing closing bracket)", what, start+rest)
	}
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return readError(err)
	}
	// The decoder's own offsets do not count what Token consumed; scanning the failed
	// value again from where it starts locates the error exactly.
	at := start
	var again *json.SyntaxError
	var raw json.RawMessage
	if errors.As(json.NewDecoder(dec.Buffered()).Decode(&raw), &again) {
		at = start + again.Offset - 1
	}
	return badBody("invalid JSON in the %s at byte offset %d: %s", what, at, se.Error())
}

// trailing checks that only white space follows the value dec has read.
func trailing(dec *json.Decoder, br *bufio.Reader, base int64, what string) *admit.Refusal {
	start := base + dec.InputOffset()
	rest := bufio.NewReader(io.MultiReader(dec.Buffered(), br))
	n, err := skipSpace(rest)
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return readError(err)
	}
	return badBody("invalid JSON: unexpected data after the JSON %s at byte offset %d; send several events "+
		"as one JSON array, or as NDJSON with Content-Type: application/x-ndjson", what, start+n)
}

// skipSpace consumes JSON white space and returns how many bytes it consumed.
func skipSpace(br *bufio.Reader) (int64, error) {
	var n int64
	for {
		c, err := br.ReadByte()
		if err != nil {
			return n, err
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			n++
		default:
			return n, br.UnreadByte()
		}
	}
}

// readError describes an error reading the body: too large, or cut off by the client or
// the server's read timeout.
func readError(err error) *admit.Refusal { return admit.ReadError(err) }
