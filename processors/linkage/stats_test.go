package linkage

import (
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"strconv"
	"testing"
)

// readPairs reads x and y columns (by position after the first skip columns) of a CSV
// file with a header, grouped by the first column when group is set.
func readPairs(t *testing.T, path string, group bool) map[string][2][]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][2][]float64{}
	for _, rec := range recs[1:] {
		key, cols := "", rec
		if group {
			key, cols = rec[0], rec[1:]
		}
		x, err1 := strconv.ParseFloat(cols[0], 64)
		y, err2 := strconv.ParseFloat(cols[1], 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: bad row %v", path, rec)
		}
		p := out[key]
		p[0], p[1] = append(p[0], x), append(p[1], y)
		out[key] = p
	}
	return out
}

// round formats v to d decimals, as the published figures are printed.
func round(v float64, d int) string { return strconv.FormatFloat(v, 'f', d, 64) }

// The Anscombe quartet: four sets with the same Pearson r (published to 7 decimals) and
// quite different rank correlations.
func TestAnscombePublishedPearson(t *testing.T) {
	sets := readPairs(t, "testdata/anscombe.csv", true)
	want := map[string]string{"I": "0.8164205", "II": "0.8162365", "III": "0.8162867", "IV": "0.8165214"}
	spearman := map[string]float64{}
	for name, r := range want {
		p := sets[name]
		if len(p[0]) != 11 {
			t.Fatalf("set %s has %d pairs", name, len(p[0]))
		}
		c, ok := Correlate(p[0], p[1])
		if !ok {
			t.Fatalf("set %s: no correlation", name)
		}
		if got := round(c.Pearson, 7); got != r {
			t.Errorf("set %s: Pearson r %s, published %s", name, got, r)
		}
		if c.Spearman == c.Pearson {
			t.Errorf("set %s: Spearman equals Pearson (%v): ranks not used?", name, c.Spearman)
		}
		spearman[name] = c.Spearman
	}
	// Set II is a parabola and set IV one outlier on a vertical line: their rank
	// correlations are far from set I's: II has rho = 0.6909091 and IV (ten ties at
	// x = 8) 0.5, as Python's statistics.correlation of the average ranks also gives.
	if got := round(spearman["II"], 7); got != "0.6909091" {
		t.Errorf("set II: Spearman %s, want 0.6909091", got)
	}
	if got := round(spearman["IV"], 7); got != "0.5000000" {
		t.Errorf("set IV: Spearman %s, want 0.5000000", got)
	}
	t.Logf("Spearman rho: I %.7f, II %.7f, III %.7f, IV %.7f", spearman["I"], spearman["II"], spearman["III"], spearman["IV"])
}

// The example of R's cor.test (Hollander & Wolfe 1973, p. 187), with R's printed output.
func TestTunaPublishedCorTest(t *testing.T) {
	p := readPairs(t, "testdata/hollander_wolfe_tuna.csv", false)[""]
	c, ok := Correlate(p[0], p[1])
	if !ok {
		t.Fatal("no correlation")
	}
	for _, check := range []struct {
		name, got, want string
	}{
		{"n", fmt.Sprint(c.N), "9"},
		{"df", fmt.Sprint(c.DF), "7"},
		{"r", round(c.Pearson, 7), "0.5711816"},
		{"t", round(c.T, 4), "1.8411"},
		{"p (two-sided)", round(c.P, 4), "0.1082"},
		{"CI low", round(c.CILow, 7), "-0.1497426"},
		{"CI high", round(c.CIHigh, 7), "0.8955795"},
		{"Spearman rho", round(c.Spearman, 7), "0.6000000"},
	} {
		if check.got != check.want {
			t.Errorf("%s = %s, published %s", check.name, check.got, check.want)
		}
	}
	// A linear transform with positive slope changes none of them: that is what lets
	// the end-to-end test feed these numbers as team means on other scales.
	x2, y2 := make([]float64, len(p[0])), make([]float64, len(p[1]))
	for i := range x2 {
		x2[i], y2[i] = p[0][i]/20, 7-(7-p[1][i])
	}
	c2, _ := Correlate(x2, y2)
	if math.Abs(c2.Pearson-c.Pearson) > 1e-12 || math.Abs(c2.P-c.P) > 1e-12 || c2.Spearman != c.Spearman {
		t.Errorf("transformed: %+v, original %+v", c2, c)
	}
}

func TestRanksAverageTies(t *testing.T) {
	got := Ranks([]float64{10, 20, 10, 30, 20, 20})
	want := []float64{1.5, 4, 1.5, 6, 4, 4}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ranks %v, want %v", got, want)
		}
	}
}

func TestCorrelateRefusesWhatItCannotEstimate(t *testing.T) {
	for _, c := range []struct {
		name string
		x, y []float64
	}{
		{"three pairs", []float64{1, 2, 3}, []float64{2, 1, 3}},
		{"constant x", []float64{1, 1, 1, 1, 1}, []float64{1, 2, 3, 4, 5}},
		{"constant y", []float64{1, 2, 3, 4, 5}, []float64{2, 2, 2, 2, 2}},
	} {
		if got, ok := Correlate(c.x, c.y); ok {
			t.Errorf("%s: got %+v", c.name, got)
		}
	}
	c, ok := Correlate([]float64{1, 2, 3, 4}, []float64{2, 4, 6, 8})
	if !ok || c.Pearson != 1 || c.P != 0 || c.CILow != 1 || c.CIHigh != 1 || c.Spearman != 1 {
		t.Errorf("perfect line: %+v", c)
	}
}
