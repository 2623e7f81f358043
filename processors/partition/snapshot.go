package partition

import (
	"bytes"
	"compress/gzip"
	"encoding/gob"
	"fmt"
	"time"

	"github.com/cxlink/cxlink/processors/attribution"
	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/followup"
	"github.com/cxlink/cxlink/processors/records"
)

// SnapshotFormat names the encoding of Snapshot. Change it with any change of the
// structures below: a reader refuses another format, and the partition replays instead.
const SnapshotFormat = "cxlink-partition-state/3 gob+gzip"

// snapshot is everything a State holds.
type snapshot struct {
	Partition    uint16
	LastReceived time.Time
	Windows      effort.Snapshot
	Index        attribution.Snapshot[WaitingSurvey]
	// FollowUps: the tickets whose last follow-up case is within the window (format 3).
	FollowUps followup.DeciderSnapshot
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
// TakeBuckets are not part of it).
func (s *State) Snapshot() ([]byte, error) {
	snap := snapshot{
		Partition:    s.id,
		LastReceived: s.lastReceived,
		Windows:      s.windows.Snapshot(),
		Index:        s.index.Snapshot(),
	}
	if s.followups != nil {
		snap.FollowUps = s.followups.Snapshot()
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := gob.NewEncoder(zw).Encode(&snap); err != nil {
		return nil, fmt.Errorf("encode partition %d: %w", s.id, err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("encode partition %d: %w", s.id, err)
	}
	return buf.Bytes(), nil
}

// Restore decodes a snapshot of partition id taken under cfg.
func Restore(id uint16, cfg Config, data []byte) (*State, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode partition %d: %w", id, err)
	}
	var snap snapshot
	if err := gob.NewDecoder(zr).Decode(&snap); err != nil {
		return nil, fmt.Errorf("decode partition %d: %w", id, err)
	}
	if snap.Partition != id {
		return nil, fmt.Errorf("decode partition %d: the snapshot is of partition %d", id, snap.Partition)
	}
	s := New(id, cfg)
	s.lastReceived = snap.LastReceived
	s.windows.Restore(snap.Windows)
	s.index.Restore(snap.Index)
	if s.followups != nil {
		s.followups.Restore(snap.FollowUps)
	}
	return s, nil
}

// DiscardBuckets forgets which buckets changed: their rows are stored already.
func (s *State) DiscardBuckets() { s.windows.DiscardChanged() }
