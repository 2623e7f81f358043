package partition

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/cxlink/cxlink/processors/attribution"
	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/followup"
	"github.com/cxlink/cxlink/processors/records"
)

// SnapshotFormat names the encoding of Snapshot. Change it with any change of the
// structures below: a reader refuses another format, and the partition replays instead.
const SnapshotFormat = "cxlink-partition-state/4 gob+s2 columns"

// snapshot is everything a State holds, as columns: flat slices of numbers, which gob
// encodes and decodes in tight loops, and every string once, in one table, which decodes
// into one allocation. Instants are Unix nanoseconds; columns marked "gaps" hold each
// value's difference from the one before (small numbers, short varints).
type snapshot struct {
	Partition    uint16
	LastReceived time.Time
	// Strings are the state's strings concatenated; string i ends at Ends[i]. The columns
	// below name strings by their number.
	Strings string
	Ends    []uint32

	// The windows (effort.Snapshot): per series its survey, dimension and key, and its
	// number of buckets; the buckets series after series, their indexes as gaps within
	// a series (the first one from 0).
	LastTick                      int64
	SeriesKeys                    []uint32
	SeriesLens                    []uint32
	BucketGaps                    []int64
	Responses, Positive, Negative []uint64
	ScoreMicro, SqMicro           []int64

	// The attribution index (attribution.Snapshot): the tickets' ids, their channel,
	// category, team and agent, and their last event (gaps); the surveys waiting; the
	// expiry queues' ids and instants (gaps).
	TicketIDs       []uint32
	TicketDims      []uint32
	TicketLastSeen  []int64
	Pending         []attribution.PendingSnapshot[WaitingSurvey]
	TicketQueueIDs  []uint32
	TicketQueueAt   []int64
	PendingQueueIDs []uint32
	PendingQueueAt  []int64

	// FollowUps: the tickets whose last follow-up case is within the window, and when it
	// opened (gaps), in ticket order.
	FollowUpIDs []uint32
	FollowUpAt  []int64
}

// WaitingSurvey is a survey waiting for its ticket, as held in the attribution index:
// its row, and what it adds to the windows once attributed.
type WaitingSurvey struct {
	Row records.Survey
	Agg effort.Aggregate
}

// ConfigFingerprint names the configuration that shapes the state: a snapshot taken
// under another one does not describe what this state would hold.
func (s *State) ConfigFingerprint() string {
	ws := ""
	for _, w := range s.cfg.Windows {
		ws += w.Name + "=" + w.Length.String() + ";"
	}
	fp := fmt.Sprintf("step=%s windows=%s lateness=%s wait=%s",
		s.cfg.Step, ws, s.cfg.AllowedLateness, s.cfg.AttributionWait)
	if s.cfg.FollowUps.On() {
		fp += " followups:" + s.cfg.FollowUps.Fingerprint
	}
	return fp
}

// Snapshot encodes the state. Take it between two messages; restore it only once every
// row up to the last message applied is stored (the buckets changed since the last
// TakeBuckets are not part of it). Equal states give equal snapshots.
func (s *State) Snapshot() ([]byte, error) {
	var st stringTable
	w := s.windows.Snapshot()
	x := s.index.Snapshot()
	snap := snapshot{
		Partition:    s.id,
		LastReceived: s.lastReceived,
		LastTick:     w.LastTick,
		SeriesKeys:   make([]uint32, 0, 3*len(w.Keys)),
		SeriesLens:   make([]uint32, len(w.Lens)),
		BucketGaps:   make([]int64, len(w.Index)),
		Responses:    w.Responses, Positive: w.Positive, Negative: w.Negative,
		ScoreMicro: w.ScoreMicro, SqMicro: w.SqMicro,
		TicketIDs:      st.ids(x.TicketIDs),
		TicketDims:     make([]uint32, 0, 4*len(x.Dims)),
		TicketLastSeen: gaps(x.LastSeen),
		Pending:        x.Pending,
		TicketQueueIDs: st.ids(x.TicketQueue.IDs), TicketQueueAt: gaps(x.TicketQueue.At),
		PendingQueueIDs: st.ids(x.PendingQueue.IDs), PendingQueueAt: gaps(x.PendingQueue.At),
	}
	at := 0
	for i, k := range w.Keys {
		snap.SeriesKeys = append(snap.SeriesKeys, st.id(k.Survey), st.id(k.Dimension), st.id(k.Key))
		snap.SeriesLens[i] = uint32(w.Lens[i])
		prev := int64(0)
		for j := at; j < at+w.Lens[i]; j++ {
			snap.BucketGaps[j], prev = w.Index[j]-prev, w.Index[j]
		}
		at += w.Lens[i]
	}
	for _, d := range x.Dims {
		snap.TicketDims = append(snap.TicketDims, st.id(d.Channel), st.id(d.Category), st.id(d.Team), st.id(d.AgentID))
	}
	if s.followups != nil {
		opened := s.followups.Snapshot().Tickets
		ids := slices.Sorted(maps.Keys(opened))
		at := make([]int64, len(ids))
		for i, id := range ids {
			at[i] = opened[id].UnixNano()
		}
		snap.FollowUpIDs, snap.FollowUpAt = st.ids(ids), gaps(at)
	}
	snap.Strings, snap.Ends = st.text.String(), st.ends

	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&snap); err != nil {
		return nil, fmt.Errorf("encode partition %d: %w", s.id, err)
	}
	return s2.Encode(nil, buf.Bytes()), nil
}

// Restore decodes a snapshot of partition id taken under cfg.
func Restore(id uint16, cfg Config, data []byte) (*State, error) {
	s, err := restore(id, cfg, data)
	if err != nil {
		return nil, fmt.Errorf("decode partition %d: %w", id, err)
	}
	return s, nil
}

func restore(id uint16, cfg Config, data []byte) (*State, error) {
	raw, err := s2.Decode(nil, data)
	if err != nil {
		return nil, err
	}
	var snap snapshot
	if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(&snap); err != nil {
		return nil, err
	}
	if snap.Partition != id {
		return nil, fmt.Errorf("the snapshot is of partition %d", snap.Partition)
	}
	st, err := readStrings(snap.Strings, snap.Ends)
	if err != nil {
		return nil, err
	}

	w := effort.Snapshot{LastTick: snap.LastTick, Lens: make([]int, len(snap.SeriesLens)),
		Index: snap.BucketGaps, Responses: snap.Responses, Positive: snap.Positive, Negative: snap.Negative,
		ScoreMicro: snap.ScoreMicro, SqMicro: snap.SqMicro}
	if len(snap.SeriesKeys) != 3*len(snap.SeriesLens) {
		return nil, fmt.Errorf("SeriesKeys: %d strings for %d series", len(snap.SeriesKeys), len(snap.SeriesLens))
	}
	w.Keys = make([]effort.SeriesKey, len(snap.SeriesLens))
	at := 0
	for i, l := range snap.SeriesLens {
		k := snap.SeriesKeys[3*i:]
		w.Keys[i] = effort.SeriesKey{Survey: st.own(k[0]), Dimension: st.own(k[1]), Key: st.own(k[2])}
		w.Lens[i] = int(l)
		if int(l) > len(w.Index)-at {
			return nil, fmt.Errorf("SeriesLens: series %d has %d buckets, %d are left", i, l, len(w.Index)-at)
		}
		undoGaps(w.Index[at : at+int(l)]) // in place: the column is ours
		at += int(l)
	}

	x := attribution.Snapshot[WaitingSurvey]{TicketIDs: st.strs(snap.TicketIDs), LastSeen: undoGaps(snap.TicketLastSeen),
		Pending:      snap.Pending,
		TicketQueue:  attribution.Queue{IDs: st.strs(snap.TicketQueueIDs), At: undoGaps(snap.TicketQueueAt)},
		PendingQueue: attribution.Queue{IDs: st.strs(snap.PendingQueueIDs), At: undoGaps(snap.PendingQueueAt)}}
	if len(snap.TicketDims) != 4*len(snap.TicketIDs) {
		return nil, fmt.Errorf("TicketDims: %d strings for %d tickets", len(snap.TicketDims), len(snap.TicketIDs))
	}
	x.Dims = make([]attribution.Dims, len(snap.TicketIDs))
	for i := range x.Dims {
		d := snap.TicketDims[4*i:]
		x.Dims[i] = attribution.Dims{Channel: st.str(d[0]), Category: st.str(d[1]), Team: st.str(d[2]), AgentID: st.str(d[3])}
	}
	var fu followup.DeciderSnapshot
	if cfg.FollowUps.On() {
		if len(snap.FollowUpAt) != len(snap.FollowUpIDs) {
			return nil, fmt.Errorf("FollowUpAt: %d instants for %d tickets", len(snap.FollowUpAt), len(snap.FollowUpIDs))
		}
		at := undoGaps(snap.FollowUpAt)
		fu.Tickets = make(map[string]time.Time, len(at))
		for i, id := range st.strs(snap.FollowUpIDs) {
			fu.Tickets[id] = time.Unix(0, at[i]).UTC()
		}
	}
	if st.err != nil {
		return nil, st.err
	}

	s := New(id, cfg)
	s.lastReceived = snap.LastReceived
	if err := s.windows.Restore(w); err != nil {
		return nil, err
	}
	if err := s.index.Restore(x); err != nil {
		return nil, err
	}
	if s.followups != nil {
		s.followups.Restore(fu)
	}
	return s, nil
}

// DiscardBuckets forgets which buckets changed: their rows are stored already.
func (s *State) DiscardBuckets() { s.windows.DiscardChanged() }

// stringTable numbers the strings of a snapshot being encoded.
type stringTable struct {
	text bytes.Buffer
	ends []uint32
	num  map[string]uint32
}

func (t *stringTable) id(s string) uint32 {
	if n, ok := t.num[s]; ok {
		return n
	}
	if t.num == nil {
		t.num = make(map[string]uint32)
	}
	t.text.WriteString(s)
	n := uint32(len(t.ends))
	t.ends = append(t.ends, uint32(t.text.Len()))
	t.num[s] = n
	return n
}

func (t *stringTable) ids(ss []string) []uint32 {
	out := make([]uint32, len(ss))
	for i, s := range ss {
		out[i] = t.id(s)
	}
	return out
}

// decodedStrings are the strings of a snapshot being decoded: substrings of its one
// text, which they keep in memory. The first string number out of range is kept as err.
type decodedStrings struct {
	strings []string
	owned   []bool
	err     error
}

func readStrings(text string, ends []uint32) (*decodedStrings, error) {
	out := &decodedStrings{strings: make([]string, len(ends)), owned: make([]bool, len(ends))}
	start := uint32(0)
	for i, end := range ends {
		if end < start || int(end) > len(text) {
			return nil, fmt.Errorf("Ends: string %d ends at %d, after %d, in a text of %d bytes", i, end, start, len(text))
		}
		out.strings[i], start = text[start:end], end
	}
	return out, nil
}

func (d *decodedStrings) str(n uint32) string {
	if int(n) >= len(d.strings) {
		if d.err == nil {
			d.err = fmt.Errorf("string %d named, the table has %d", n, len(d.strings))
		}
		return ""
	}
	return d.strings[n]
}

// own is str for strings that may be held for as long as the process runs (series keys:
// a series lives while it gets responses), copied out of the text, each once. Tickets and
// queue entries expire, and the text with them.
func (d *decodedStrings) own(n uint32) string {
	s := d.str(n)
	if int(n) < len(d.strings) && !d.owned[n] {
		s = strings.Clone(s)
		d.strings[n], d.owned[n] = s, true
	}
	return s
}

func (d *decodedStrings) strs(ns []uint32) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = d.str(n)
	}
	return out
}

// gaps returns each value's difference from the one before (the first one's from 0).
func gaps(vs []int64) []int64 {
	out := make([]int64, len(vs))
	prev := int64(0)
	for i, v := range vs {
		out[i], prev = v-prev, v
	}
	return out
}

// undoGaps turns gaps back into values, in place, and returns vs.
func undoGaps(vs []int64) []int64 {
	sum := int64(0)
	for i, g := range vs {
		sum += g
		vs[i] = sum
	}
	return vs
}
