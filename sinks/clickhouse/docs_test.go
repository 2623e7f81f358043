package clickhouse_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/records"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// The query docs/storage.md gives for a window over time (1 h windows every 5 min) runs
// on this server and gives the windows WindowTotals (the drift detector's read) gives.
func TestDocumentedWindowOverTime(t *testing.T) {
	doc, err := os.ReadFile("../../docs/storage.md")
	if err != nil {
		t.Fatal(err)
	}
	var query string
	for _, m := range regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		if strings.Contains(m[1], "intDiv(toUInt32(bucket_start)") {
			query = m[1]
		}
	}
	if query == "" {
		t.Fatal("docs/storage.md has no window-over-time query (intDiv(toUInt32(bucket_start), …))")
	}
	c, _ := open(t, chtest.Start(t))
	ctx := context.Background()
	end := at("2026-03-02T12:00:00Z")
	var b records.Batch
	for i := range 600 {
		n := uint64(1 + i%4)
		b.Buckets = append(b.Buckets, records.Bucket{Survey: "ces", Dimension: "category", Key: fmt.Sprint("cat-", i%3),
			Start: end.Add(-time.Duration(i) * 7 * time.Minute), Partition: uint16(i % 2), Responses: n,
			ScoreSum: float64(n * uint64(1+i%7)), Version: 1})
	}
	if err := c.WriteBatch(ctx, &b); err != nil {
		t.Fatal(err)
	}
	w := effort.Window{Name: "1h", Length: time.Hour}
	from, to, r := end.Add(-6*time.Hour), end, 5*time.Minute
	q := strings.NewReplacer("{r}", "300", "{W}", "3600",
		"{from}", fmt.Sprintf("toDateTime(%d)", from.Unix()), "{to}", fmt.Sprintf("toDateTime(%d)", to.Unix()),
		"FROM rollup_buckets", "FROM "+c.Database()+".rollup_buckets").Replace(query)
	rows, err := c.Conn().Query(ctx, q)
	if err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	got := map[string]string{}
	for rows.Next() {
		var (
			at        time.Time
			key       string
			responses uint64
			mean      float64
		)
		if err := rows.Scan(&at, &key, &responses, &mean); err != nil {
			t.Fatal(err)
		}
		got[fmt.Sprint(at.UTC(), key)] = fmt.Sprintf("%d %.6f", responses, mean)
	}
	rows.Close()
	var ends []time.Time
	for t := from; !t.After(to); t = t.Add(r) {
		ends = append(ends, t)
	}
	totals, err := c.WindowTotals(ctx, w, ends)
	if err != nil {
		t.Fatal(err)
	}
	if len(totals) != len(got) || len(got) < 3*len(ends)-3 {
		t.Errorf("documented query: %d windows, WindowTotals %d (of %d ticks × 3 keys)", len(got), len(totals), len(ends))
	}
	for _, w := range totals {
		k := fmt.Sprint(w.WindowEnd, w.Key)
		if want := fmt.Sprintf("%d %.6f", w.Responses, w.ScoreSum/float64(w.Responses)); got[k] != want {
			t.Errorf("window ending %s: documented query %q, WindowTotals %q", k, got[k], want)
		}
	}
}
