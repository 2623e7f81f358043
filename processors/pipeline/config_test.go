package pipeline

import (
	"slices"
	"strings"
	"testing"
)

func TestPartitionSet(t *testing.T) {
	for _, c := range []struct {
		text string
		want []int // of 8 partitions
		err  string
	}{
		{text: "all", want: []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{text: "", want: []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{text: "0-3, 6", want: []int{0, 1, 2, 3, 6}},
		{text: "5,1-2,2", want: []int{5, 1, 2}},
		{text: "3-9", err: "names partition 9, but the stream has 8 (0-7)"},
		{text: "x", err: `"x" is not a partition`},
		{text: "4-2", err: `"4-2" is not a partition`},
		{text: "-1", err: `"-1" is not a partition`},
	} {
		var s PartitionSet
		err := s.UnmarshalText([]byte(c.text))
		var got []int
		if err == nil {
			got, err = s.Of(8)
		}
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want one saying %q", c.text, err, c.err)
		case c.err == "" && (err != nil || !slices.Equal(got, c.want)):
			t.Errorf("%q: %v, %v; want %v", c.text, got, err, c.want)
		}
		if err == nil && c.text != "" && strings.ReplaceAll(c.text, " ", "") != s.String() {
			t.Errorf("%q reads back as %q", c.text, s.String())
		}
	}
}
