package pulses

import (
	"strings"
	"testing"
	"time"
)

var monday = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC) // a Monday

// The policy publishes a group at k respondents and again only at k more: any two
// published figures of a group differ by at least k people.
func TestPublishNeedsKNewRespondents(t *testing.T) {
	c := DefaultConfig()
	for _, tc := range []struct {
		n, published uint64
		want         bool
	}{
		{4, 0, false}, {5, 0, true}, {23, 0, true}, // first publication: k or more
		{6, 5, false}, {9, 5, false}, {10, 5, true}, // again: k more than last time
		{5, 5, false}, {4, 5, false}, // nothing new, or fewer (a changed key): keep the old figure
		{27, 23, false}, {28, 23, true},
	} {
		if got := c.Publish(tc.n, tc.published); got != tc.want {
			t.Errorf("Publish(%d respondents, last published with %d) = %v, want %v", tc.n, tc.published, got, tc.want)
		}
	}
	// Simulate answers arriving one by one: every pair of published counts is k apart.
	var published []uint64
	last := uint64(0)
	for n := uint64(1); n <= 40; n++ {
		if c.Publish(n, last) {
			published = append(published, n)
			last = n
		}
	}
	for i := 1; i < len(published); i++ {
		if published[i]-published[i-1] < 5 {
			t.Fatalf("published at %v: two figures differ by fewer than k respondents", published)
		}
	}
}

func TestPeriodsCloseAfterTheGrace(t *testing.T) {
	c := DefaultConfig()
	week := 7 * 24 * time.Hour
	if got := c.ClosedBefore(monday.Add(30 * time.Minute)); !got.Equal(monday.Add(-week)) {
		t.Errorf("half an hour into Monday the week before is still open: closed before %s", got)
	}
	if got := c.ClosedBefore(monday.Add(time.Hour)); !got.Equal(monday) {
		t.Errorf("an hour into Monday last week is closed: closed before %s, want %s", got, monday)
	}
	now := monday.Add(3 * 24 * time.Hour)
	if got := c.OldestAccepted(now); !got.Equal(now.Add(-92 * 24 * time.Hour)) {
		t.Errorf("oldest accepted %s", got)
	}
	if got := c.PublishFrom(now); got.After(c.OldestAccepted(now).Add(-Slack)) || got.Weekday() != time.Monday {
		t.Errorf("publish from %s: must start a week and reach %s back", got, Slack)
	}
}

func TestPeriodStartMatchesSQLOffset(t *testing.T) {
	for _, p := range []time.Duration{7 * 24 * time.Hour, 24 * time.Hour, 10 * time.Minute, 90 * time.Minute} {
		for _, t0 := range []time.Time{monday.Add(3*24*time.Hour + 5*time.Hour + 7*time.Second), time.Unix(1, 0), monday.Add(-time.Second)} {
			sec := int64(p / time.Second)
			off := EpochOffset(p)
			sql := ((t0.Unix()+off)/sec)*sec - off
			if got := PeriodStart(t0, p).Unix(); got != sql {
				t.Errorf("period %s at %s: Truncate %d, SQL %d", p, t0, got, sql)
			}
		}
	}
	if got := PeriodStart(monday.Add(50*time.Hour), 7*24*time.Hour); !got.Equal(monday) {
		t.Errorf("weeks start on %s, want Monday %s", got, monday)
	}
}

func TestConfig(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	err := (Config{MinRespondents: 2, Grace: -time.Second}).Validate()
	for _, want := range []string{"CXLINK_PULSE_PERIOD", "CXLINK_ANONYMITY_MIN_RESPONDENTS", "CXLINK_PULSE_GRACE", "CXLINK_PULSE_LOOKBACK"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v lacks %s", err, want)
		}
	}
	short := DefaultConfig()
	short.Lookback = MustParsePeriod("1d")
	if err := short.Validate(); err == nil || !strings.Contains(err.Error(), "shorter than a period") {
		t.Errorf("a lookback shorter than a period: %v", err)
	}
	var p Period
	for _, bad := range []string{"30s", "7x", "1h,7d", ""} {
		if err := p.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("period %q accepted", bad)
		}
	}
	if err := p.UnmarshalText([]byte("10m")); err != nil || p.Name != "10m" || p.Length != 10*time.Minute {
		t.Errorf("10m read as %+v, %v", p, err)
	}
	if b, _ := DefaultConfig().Period.MarshalText(); string(b) != "7d" {
		t.Errorf("default period %s", b)
	}
}
