package importer

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Format of an input file.
type Format string

// Input formats.
const (
	CSV    Format = "csv"
	NDJSON Format = "ndjson"
)

// record is one row read, with where it ends in the file.
type record struct {
	line int   // the row's first line, from 1
	next int   // the line after the row
	end  int64 // byte offset just after the row
	row  row
	err  error // the row could not be read (e.g. wrong number of fields)
	// json is the raw NDJSON object, for pass-through imports.
	json []byte
}

// reader reads records from a file, from a byte offset on.
type reader interface {
	next() (record, error) // io.EOF at the end
}

type csvReader struct {
	r      *csv.Reader
	header map[string]int
	cols   int
	base   int64 // file offset the csv reader started at
	lines  int   // lines before base
}

// openCSV reads the header at the start of f, then positions at offset (0: just after
// the header) whose first line is line.
func openCSV(f *os.File, offset int64, line int) (*csvReader, []string, error) {
	hr := csv.NewReader(f)
	hr.FieldsPerRecord = -1
	header, err := hr.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("reading the CSV header: %w", err)
	}
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	idx := make(map[string]int, len(header))
	for i, h := range header {
		h = strings.TrimSpace(h)
		header[i] = h
		if _, dup := idx[h]; dup {
			return nil, nil, fmt.Errorf("the CSV header names column %q twice", h)
		}
		idx[h] = i
	}
	if offset == 0 {
		// Just after the header: count its lines (a quoted name may hold a line break).
		offset = hr.InputOffset()
		head := make([]byte, offset)
		if _, err := f.ReadAt(head, 0); err != nil {
			return nil, nil, err
		}
		line = bytes.Count(head, []byte("\n")) + 1
		if len(head) > 0 && head[len(head)-1] != '\n' {
			line++
		}
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, nil, err
	}
	r := csv.NewReader(bufio.NewReaderSize(f, 256<<10))
	r.FieldsPerRecord = -1
	r.ReuseRecord = false
	return &csvReader{r: r, header: idx, cols: len(header), base: offset, lines: line - 1}, header, nil
}

func (c *csvReader) next() (record, error) {
	fields, err := c.r.Read()
	if errors.Is(err, io.EOF) {
		return record{}, io.EOF
	}
	l, _ := c.r.FieldPos(0)
	rec := record{line: c.lines + l, next: c.lines + l + 1, end: c.base + c.r.InputOffset()}
	if len(fields) > 0 {
		last, _ := c.r.FieldPos(len(fields) - 1)
		rec.next = c.lines + last + strings.Count(fields[len(fields)-1], "\n") + 1
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		rec.err = fmt.Errorf("unreadable CSV: %v", pe.Err)
		if pe.StartLine > 0 {
			rec.line = c.lines + pe.StartLine
		}
		rec.next = c.lines + pe.Line + 1
		return rec, nil
	}
	if err != nil {
		return record{}, err
	}
	if len(fields) != c.cols {
		rec.err = fmt.Errorf("%d fields, the header has %d", len(fields), c.cols)
		return rec, nil
	}
	rec.row = row{raw: fields, get: func(col string) (string, bool) {
		i, ok := c.header[col]
		if !ok {
			return "", false
		}
		return fields[i], true
	}}
	return rec, nil
}

type ndjsonReader struct {
	r    *bufio.Reader
	off  int64
	line int
}

func openNDJSON(f *os.File, offset int64, line int) (*ndjsonReader, error) {
	if line == 0 {
		line = 1
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, err
	}
	return &ndjsonReader{r: bufio.NewReaderSize(f, 256<<10), off: offset, line: line - 1}, nil
}

func (n *ndjsonReader) next() (record, error) {
	for {
		b, err := n.r.ReadBytes('\n')
		if len(b) == 0 && errors.Is(err, io.EOF) {
			return record{}, io.EOF
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return record{}, err
		}
		n.off += int64(len(b))
		n.line++
		if n.line == 1 {
			b = bytes.TrimPrefix(b, []byte("\ufeff"))
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		rec := record{line: n.line, next: n.line + 1, end: n.off, json: b}
		var obj map[string]any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil || obj == nil {
			rec.err = fmt.Errorf("not a JSON object: %v", err)
			return rec, nil
		}
		rec.row = row{raw: []string{string(b)}, get: func(col string) (string, bool) { return lookup(obj, col) }}
		return rec, nil
	}
}

// lookup finds a dotted key in a JSON object and renders it as text.
func lookup(obj map[string]any, key string) (string, bool) {
	var v any = obj
	for _, part := range strings.Split(key, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = m[part]; !ok {
			return "", false
		}
	}
	switch x := v.(type) {
	case nil:
		return "", true
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	default:
		b, _ := json.Marshal(x)
		return string(b), true
	}
}
