package clickhouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// The migration lock: processes that start together all migrate, and a migration that
// rebuilds a table (0011) must not run twice at once. The lock is a table, schema_lock,
// that one process creates (CREATE without IF NOT EXISTS succeeds once) and drops when
// done; while it holds it, it writes a heartbeat row every lockBeat. A lock without a
// heartbeat for lockStale (its holder died) is taken over.
const (
	lockBeat  = 10 * time.Second
	lockStale = 2 * time.Minute
	lockPoll  = 300 * time.Millisecond
)

// pending reports whether some migration of all is not applied.
func pending(all []Migration, applied map[uint32]time.Time) bool {
	for _, m := range all {
		if _, ok := applied[m.Version]; !ok {
			return true
		}
	}
	return false
}

// lockMigrations waits until this process holds the migration lock; unlock releases it.
func (c *Client) lockMigrations(ctx context.Context) (unlock func(), err error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	holder := hex.EncodeToString(b)
	table := c.cfg.Database + ".schema_lock"
	beat := func(ctx context.Context) error {
		return c.conn.Exec(ctx, "INSERT INTO "+table+" (holder, beat) SELECT ?, now()", holder)
	}
	var emptySince time.Time
	for {
		err := c.conn.Exec(ctx, "CREATE TABLE "+table+" (holder String, beat DateTime('UTC')) ENGINE = Log")
		if err == nil {
			break
		}
		var e *ch.Exception
		if !errors.As(err, &e) || e.Code != 57 {
			return nil, fmt.Errorf("take the migration lock: %w", err)
		}
		// Held: by a live process, or by one that died holding it.
		var (
			beats uint64
			age   int64
		)
		if err := c.conn.QueryRow(ctx, "SELECT count(), toInt64(now()) - toInt64(max(beat)) FROM "+table).Scan(&beats, &age); err == nil {
			switch {
			case beats > 0:
				emptySince = time.Time{}
			case emptySince.IsZero():
				emptySince = time.Now()
			}
			if (beats > 0 && time.Duration(age)*time.Second > lockStale) || (beats == 0 && time.Since(emptySince) > lockStale) {
				c.logger.Warn("taking over the migration lock of a process that stopped migrating", "silent_for", lockStale)
				stale := fmt.Sprintf("%s.schema_lock_stale_%s", c.cfg.Database, holder)
				if c.conn.Exec(ctx, "RENAME TABLE "+table+" TO "+stale) == nil {
					_ = c.conn.Exec(ctx, "DROP TABLE IF EXISTS "+stale)
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the migration lock held by another process: %w", ctx.Err())
		case <-time.After(lockPoll):
		}
	}
	if err := beat(ctx); err != nil {
		_ = c.conn.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+table)
		return nil, fmt.Errorf("take the migration lock: %w", err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(lockBeat)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if err := beat(ctx); err != nil {
					c.logger.Warn("migration lock heartbeat", "err", err)
				}
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		if err := c.conn.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+table); err != nil {
			c.logger.Warn("release the migration lock", "err", err)
		}
	}, nil
}
