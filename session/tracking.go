package session

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Visit describes the current visit, in the manner of TurboGears'
// visit.current(), without revealing its token.
type Visit struct {
	// IsNew reports that the request came without a live visit: the
	// visitor's first request, or the first after the visit expired or
	// ended. It does not change during the request.
	IsNew bool
	// Created is when the visit's row was first written; zero while it
	// has none (with TrackAll, until the end of the visitor's first
	// request).
	Created time.Time
	// Expiry is when the visit ends unless the visitor comes back; zero
	// while it has no row.
	Expiry time.Time
}

// CurrentVisit returns the visit of the request whose context is ctx, as
// bound by [Middleware.Wrap]. Like any use of the session it loads it (one
// statement when the request carried a cookie). Outside the middleware it
// returns a Visit with IsNew set and zero times.
func CurrentVisit(ctx context.Context) Visit {
	rs := requestFrom(ctx)
	if rs == nil {
		return Visit{IsNew: true}
	}
	rs.used.Store(true)
	rs.noteArrival()
	return Visit{IsNew: rs.arrivedNew, Created: rs.session.Created(), Expiry: rs.session.Expiry()}
}

// maxQueuedTouches bounds the touch queue; past it, requests write their
// touches themselves.
const maxQueuedTouches = 10_000

// touchFlushTimeout bounds one flush of the queue.
const touchFlushTimeout = 30 * time.Second

// touchBatcher queues expiry touches and writes them every interval from
// one goroutine, each session once.
type touchBatcher struct {
	store  *Store
	every  time.Duration
	logger *slog.Logger

	mu     sync.Mutex
	queue  map[string]*Session // by token
	closed bool

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

func newTouchBatcher(ctx context.Context, store *Store, every time.Duration, logger *slog.Logger) *touchBatcher {
	b := &touchBatcher{
		store:  store,
		every:  every,
		logger: logger,
		queue:  make(map[string]*Session),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go b.run(ctx)
	return b
}

func (b *touchBatcher) run(ctx context.Context) {
	defer close(b.done)
	// Writes outlive the cancellation that stops the loop: the last flush
	// runs after it.
	wctx := context.WithoutCancel(ctx)
	t := time.NewTicker(b.every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.flush(wctx)
		case <-ctx.Done():
			b.shutdown(wctx)
			return
		case <-b.stop:
			b.shutdown(wctx)
			return
		}
	}
}

func (b *touchBatcher) shutdown(ctx context.Context) {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.flush(ctx)
}

// add queues sess's touch. It returns false when the queue is full or
// closed: the caller then writes the touch itself.
func (b *touchBatcher) add(sess *Session) bool {
	tok := sess.Token()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || tok == "" {
		return false
	}
	if _, ok := b.queue[tok]; !ok && len(b.queue) >= maxQueuedTouches {
		return false
	}
	b.queue[tok] = sess
	return true
}

// flush writes every queued touch.
func (b *touchBatcher) flush(ctx context.Context) {
	b.mu.Lock()
	q := b.queue
	if len(q) == 0 {
		b.mu.Unlock()
		return
	}
	b.queue = make(map[string]*Session, len(q))
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, touchFlushTimeout)
	defer cancel()
	failed := 0
	var last error
	for _, sess := range q {
		if err := b.store.Touch(ctx, sess); err != nil {
			failed++
			last = err
		}
	}
	if failed > 0 {
		b.logger.Error("session: batched touches failed", "failed", failed, "queued", len(q), "error", last)
	}
}

// close stops the flusher after a last flush, and waits for it.
func (b *touchBatcher) close() {
	b.stopOnce.Do(func() { close(b.stop) })
	<-b.done
}
