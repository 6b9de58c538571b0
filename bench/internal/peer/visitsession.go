package peer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// vsInstance is visitsession with every default: Merge mode, idle timeout
// 2h, absolute timeout 24h, touch interval a tenth of the idle timeout,
// the binary codec, lazy loading and a persistent cookie.
type vsInstance struct {
	db      *Database
	table   visit.Table
	store   *session.Store
	mw      *session.Middleware
	handler http.Handler
	errs    errorCounter
	mark    session.Stats
	// backdated holds stores whose clock is set per Create call, for
	// sessions created with an age.
	backdated chan *clockedStore
}

type clockedStore struct {
	store *session.Store
	now   time.Time
}

func startVisitsession(ctx context.Context, db *Database) (Instance, error) {
	tab := visit.Default()
	if _, err := visit.Migrate(ctx, db.DB, db.Dialect, tab); err != nil {
		return nil, fmt.Errorf("visitsession: migrate: %w", err)
	}
	v := &vsInstance{db: db, table: tab, backdated: make(chan *clockedStore, 64)}
	var err error
	if v.store, err = session.Open(ctx, db.DB, db.Dialect, session.WithTable(tab)); err != nil {
		_ = v.dropTable(context.WithoutCancel(ctx))
		return nil, err
	}
	v.mw, err = session.NewMiddleware(ctx, v.store, session.MiddlewareOptions{ErrorHandler: v.errs.handle})
	if err != nil {
		_ = v.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	v.handler = v.mw.Wrap(routes(
		func(r *http.Request) int64 { return session.FromContext(r.Context()).GetInt64("user_id") },
		func(r *http.Request, n int) { session.FromContext(r.Context()).Set("cart_items", n) },
	))
	return v, nil
}

func (v *vsInstance) CookieName() string    { return session.DefaultCookieName }
func (v *vsInstance) Handler() http.Handler { return v.handler }

func (v *vsInstance) Create(ctx context.Context, i int, age time.Duration) (string, error) {
	st := v.store
	if age > 0 {
		cs, err := v.clocked(ctx)
		if err != nil {
			return "", err
		}
		defer v.putClocked(cs)
		cs.now = time.Now().Add(-age)
		st = cs.store
	}
	s := st.New()
	for k, val := range SessionValues(i) {
		s.Set(k, val)
	}
	if err := st.Save(ctx, s); err != nil {
		return "", err
	}
	return s.Token(), nil
}

// clocked returns a store whose clock reads the returned value's now
// field, owned by the caller until putClocked.
func (v *vsInstance) clocked(ctx context.Context) (*clockedStore, error) {
	select {
	case cs := <-v.backdated:
		return cs, nil
	default:
	}
	cs := &clockedStore{}
	st, err := session.Open(ctx, v.db.DB, v.db.Dialect, session.WithTable(v.table),
		session.WithClock(func() time.Time { return cs.now }))
	if err != nil {
		return nil, err
	}
	cs.store = st
	return cs, nil
}

func (v *vsInstance) putClocked(cs *clockedStore) {
	select {
	case v.backdated <- cs:
	default:
		cs.store.Close()
	}
}

func (v *vsInstance) Mark() { v.mark = v.store.Stats() }

func (v *vsInstance) Notes() string {
	s := v.store.Stats()
	m := v.mark
	return fmt.Sprintf("store counters: %d loads (%d misses), %d data updates, %d touches, %d conflicts, %d retries",
		s.Loads-m.Loads, s.Misses-m.Misses, s.Updates-m.Updates, s.Touches-m.Touches, s.Conflicts-m.Conflicts, s.Retries-m.Retries)
}

func (v *vsInstance) Conflicts() uint64 { return v.store.Stats().Conflicts - v.mark.Conflicts }

func (v *vsInstance) MiddlewareErrors() (uint64, string) { return v.errs.get() }

func (v *vsInstance) Close(ctx context.Context) error {
	var err error
	if v.mw != nil {
		err = v.mw.Close()
	}
	for done := false; !done; {
		select {
		case cs := <-v.backdated:
			cs.store.Close()
		default:
			done = true
		}
	}
	err = errors.Join(err, v.store.Close(), v.dropTable(ctx))
	return err
}

func (v *vsInstance) dropTable(ctx context.Context) error {
	_, err := v.db.DB.ExecContext(ctx, "DROP TABLE "+v.db.Dialect.Quote(v.table.Name))
	return err
}
