package importer

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// bar draws the progress of an import: a bar by bytes read, rows, rows per second and the
// time left. Interactive bars redraw one line at most 5 times a second; others print a
// line every 10 seconds.
type bar struct {
	w           io.Writer
	interactive bool
	size        int64
	startOffset int64
	startRows   int
	start, last time.Time
	now         func() time.Time
}

// newBar starts a bar at offset, where rows rows were already done (a resumed import).
func newBar(w io.Writer, interactive bool, size, offset int64, rows int) *bar {
	t := time.Now()
	return &bar{w: w, interactive: interactive, size: size, startOffset: offset, start: t, now: time.Now, startRows: rows}
}

func (b *bar) update(s Stats, offset int64) {
	if b.w == nil {
		return
	}
	now := b.now()
	every := 10 * time.Second
	if b.interactive {
		every = 200 * time.Millisecond
	}
	if b.last.IsZero() {
		b.last = now // the first line after a full interval, when the rate means something
	}
	if now.Sub(b.last) < every {
		return
	}
	b.last = now
	b.draw(s, offset, false)
}

func (b *bar) done(s Stats, offset int64) {
	if b.w == nil {
		return
	}
	b.draw(s, offset, true)
}

func (b *bar) draw(s Stats, offset int64, final bool) {
	frac := 1.0
	if b.size > 0 {
		frac = float64(offset) / float64(b.size)
	}
	elapsed := b.now().Sub(b.start)
	rows := s.Rows - b.startRows
	rate := 0.0
	if elapsed > 0 {
		rate = float64(rows) / elapsed.Seconds()
	}
	eta := "--:--"
	if done := offset - b.startOffset; done > 0 && !final {
		left := time.Duration(float64(elapsed) * float64(b.size-offset) / float64(done))
		eta = clock(left)
	} else if final {
		eta = clock(0)
	}
	const width = 30
	n := int(frac * width)
	bar := strings.Repeat("=", n) + strings.Repeat(" ", width-n)
	if n < width {
		bar = bar[:n] + ">" + bar[n+1:]
	}
	line := fmt.Sprintf("[%s] %3.0f%%  %d rows  %.0f rows/s  ETA %s  %d accepted, %d duplicates, %d rejected",
		bar, 100*frac, s.Rows, rate, eta, s.Accepted, s.Duplicates, s.Rejected)
	if b.interactive {
		fmt.Fprintf(b.w, "\r%s", line)
		if final {
			fmt.Fprintln(b.w)
		}
		return
	}
	fmt.Fprintln(b.w, line)
}

func clock(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}
