package sweeper

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/visit"
)

// LeaseKey is the key of the lease row that sweepers of one table share.
// It is 40 characters long, like every key, and made of '~', '.' and
// letters: '~' and '.' belong to neither the lowercase hex of hashed keys
// nor the base64url of plain tokens, so it can never equal a session's
// key, and [visit.ParseToken] rejects it. The sweeper never clears or
// deletes this row; other code that scans the table may want to skip it.
const LeaseKey = "~visitsession.sweeper.lease~~~~~~~~~~~~~"

// lease is the state of the lease during one run.
type lease struct {
	held    bool
	renewed time.Time // Clock time of the last acquire or renew
	holder  string    // when not held: the holder seen
	until   time.Time // when not held: the end of the holder's lease
}

// newOwner returns a name for this sweeper in the lease row: host, process
// and a random suffix, so two sweepers in one process differ.
func newOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	if len(host) > 64 {
		host = host[:64]
	}
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// acquire takes the lease if it is free, has ended, or is already ours: a
// conditional UPDATE of the lease row, and an INSERT when the row does not
// exist yet, where a duplicate key means another instance won.
func (s *Sweeper) acquire(ctx context.Context, rep *Report, now time.Time) (lease, error) {
	var l lease
	err := s.retry(ctx, rep, "acquire lease", func(ctx context.Context) error {
		owner := []byte(s.owner)
		end := s.encode(now.Add(s.cfg.leaseTTL))
		// A second round covers a lease released between the UPDATE and
		// the read.
		for range 2 {
			l = lease{}
			res, err := s.db.ExecContext(ctx, s.st.Lease.Acquire, owner, end, LeaseKey, s.encode(now), owner)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n > 0 {
				l.held, l.renewed = err == nil, now
				return err
			}
			// The row is missing or held by another instance.
			found, err := s.readLease(ctx, &l)
			switch {
			case err != nil:
				return err
			case found && l.until.After(now):
				return nil
			case found:
				continue
			}
			_, err = s.db.ExecContext(ctx, s.st.Lease.Insert, LeaseKey, owner, s.encode(now), end)
			switch {
			case err == nil:
				l.held, l.renewed = true, now
				return nil
			case s.d.Classify(err) == dialect.Duplicate:
				_, err = s.readLease(ctx, &l)
				return err
			}
			return err
		}
		return nil
	})
	return l, err
}

// readLease fills the holder and end of a lease held elsewhere.
func (s *Sweeper) readLease(ctx context.Context, l *lease) (found bool, err error) {
	var holder []byte
	var until any
	err = s.db.QueryRowContext(ctx, s.st.Lease.Read, LeaseKey).Scan(&holder, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	l.holder = string(holder)
	if l.until, err = s.d.DecodeTime(until); err != nil {
		return true, fmt.Errorf("lease end: %w", err)
	}
	return true, nil
}

// renew extends the lease when a third of it has passed. It returns
// ErrLeaseLost when the row names another holder. It runs on q, the
// connection the run holds if any, so that a run never needs a second
// connection of the pool.
func (s *Sweeper) renew(ctx context.Context, rep *Report, l *lease, q visit.Querier) error {
	now := s.cfg.clock()
	if now.Sub(l.renewed) < s.cfg.leaseTTL/3 {
		return nil
	}
	var n int64
	err := s.retry(ctx, rep, "renew lease", func(ctx context.Context) error {
		res, err := q.ExecContext(ctx, s.st.Lease.Renew, s.encode(now.Add(s.cfg.leaseTTL)), LeaseKey, []byte(s.owner))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("sweeper: renew lease on %s: %w", s.t.Name, err)
	}
	if n == 0 {
		l.held = false
		return fmt.Errorf("sweeper: renew lease on %s: %w", s.t.Name, ErrLeaseLost)
	}
	l.renewed = now
	return nil
}

// release ends the lease now, so that any instance may take the next run.
// It outlives the cancellation of ctx; a failure is logged and counted,
// and leaves the lease to end by itself.
func (s *Sweeper) release(ctx context.Context, rep *Report, l *lease) {
	if !l.held {
		return
	}
	ctx = context.WithoutCancel(ctx)
	err := s.retry(ctx, rep, "release lease", func(ctx context.Context) error {
		_, err := s.db.ExecContext(ctx, s.st.Lease.Renew, s.encode(s.cfg.clock()), LeaseKey, []byte(s.owner))
		return err
	})
	if err != nil {
		s.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "sweeper: release lease failed",
			slog.String("table", s.t.Name), slog.Any("error", err))
	}
	l.held = false
}
