package wait

import (
	"context"
	"time"
)

// Sleep waits for d or until ctx is done, whichever comes first; it
// returns ctx's error in the second case, and at once when d is not
// positive.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
