package sweeper

import "errors"

var (
	// ErrInvalidOptions reports options that [New] rejects. The error New
	// returns wraps it and names the offending field.
	ErrInvalidOptions = errors.New("invalid sweeper options")
	// ErrLeaseLost reports that another instance took the lease over during
	// a run, because a batch or a pause outlasted [Options.LeaseTTL]. The
	// run stopped after its last committed batch; nothing is undone, and
	// the other instance carries on.
	ErrLeaseLost = errors.New("sweeper lease taken over by another instance")
)
