package clickhouse

import (
	"os"
	"path/filepath"
	"testing"
)

// envWriteGolden=1 writes testdata/single_node/<migration> for the migrations that have
// none; it never overwrites one.
const envWriteGolden = "CXLINK_WRITE_MISSING_GOLDEN"

// A released migration never changes what it runs on one node: its rendering for database
// cxlink is frozen in testdata/single_node, written once from the file as released. A new
// migration gets its golden with
//
//	CXLINK_WRITE_MISSING_GOLDEN=1 go test ./sinks/clickhouse -run TestSingleNodeRenderingIsFrozen
func TestSingleNodeRenderingIsFrozen(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		got, err := m.render("cxlink")
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", "single_node", m.file())
		want, err := os.ReadFile(path)
		if os.IsNotExist(err) && os.Getenv(envWriteGolden) == "1" {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s", path)
			continue
		}
		if err != nil {
			t.Errorf("migration %s has no frozen rendering: %v; write it with %s=1", m.file(), err, envWriteGolden)
			continue
		}
		if got != string(want) {
			t.Errorf("migration %s renders differently on one node than as released (%s):\n%s", m.file(), path, firstDifference(got, string(want)))
		}
	}
}

// firstDifference quotes the two texts from a little before where they first differ.
func firstDifference(got, want string) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(0, i-80)
	return "got:  …" + got[from:min(len(got), i+80)] + "…\nwant: …" + want[from:min(len(want), i+80)] + "…"
}
