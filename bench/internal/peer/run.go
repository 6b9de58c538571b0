package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/visitsession/visitsession/bench/internal/countdriver"
	"github.com/visitsession/visitsession/dialect"
)

// Workload describes one measured run.
type Workload struct {
	// Sessions is the number of sessions created before the run; each
	// request picks one uniformly at random. Default: 10000.
	Sessions int
	// Clients is the number of concurrent clients, each sending one
	// request at a time. Default: 8.
	Clients int
	// Duration is each contender's measured time. Default: 10s.
	Duration time.Duration
	// Requests, when positive, ends each contender's measured phase after
	// this many requests instead (Duration still bounds it). Default: 0.
	Requests int
	// Warmup is an unmeasured phase before the measured one, that opens
	// the pool's connections and prepares statements. Default: 0 (none).
	Warmup time.Duration
	// WriteShare is the share of requests that write a value.
	// Default: 0 (every request reads); the command uses 0.05.
	WriteShare float64
	// IdleSpread, when positive, creates session i as last used
	// IdleSpread*i/Sessions ago, for libraries that can backdate a
	// session: with visitsession's touch interval (12m by default) it
	// models a steady state in which each session's last touch lies
	// anywhere in the interval. Sessions keep ageing during setup and
	// while other contenders' slices run, so measure touches with one
	// contender alone. Default: 0 (every session is fresh).
	IdleSpread time.Duration
	// Slices is how many slices each contender's measured time is cut
	// into, measured in rotation with the other contenders'. Default: 5.
	Slices int
	// HTTP sends the requests through an httptest.Server on loopback
	// instead of calling the handler's ServeHTTP directly.
	// Default: false.
	HTTP bool
	// CPUProfile, when set, is a directory that receives a CPU profile of
	// every measured slice, as DB-CONTENDER-SLICE.pprof (give pprof all
	// slices of a contender at once to merge them). Default: "" (no
	// profile).
	CPUProfile string
	// Seed seeds the clients' choices: client c in slice s draws from
	// PCG(Seed + s*1000003, c). Default: 0.
	Seed uint64
}

func (w *Workload) defaults() {
	if w.Sessions <= 0 {
		w.Sessions = 10000
	}
	if w.Clients <= 0 {
		w.Clients = 8
	}
	if w.Duration <= 0 {
		w.Duration = 10 * time.Second
	}
	if w.Slices <= 0 {
		w.Slices = 5
	}
}

// Result is what one run of one contender on one database measured.
type Result struct {
	Database  string
	Contender Contender
	// Setup is how long creating the sessions took.
	Setup time.Duration
	// Elapsed is the length of the measured phase.
	Elapsed time.Duration
	// Reads and Writes count the requests of the measured phase.
	Reads, Writes uint64
	// Errors counts failed requests: a status other than 200, a wrong
	// answer, a lost session cookie, a middleware error.
	Errors uint64
	// FirstError describes the first failure.
	FirstError string
	// Stmts counts the statements of the measured phase.
	Stmts countdriver.Counts
	// Conflicts counts the write statements of write requests that lost
	// to a concurrent save and were run again.
	Conflicts uint64
	// Latencies holds the sorted latency of every request.
	Latencies []time.Duration
	// SliceRPS holds the req/s of each measured slice, sorted.
	SliceRPS []float64
	// Notes is what the library counted itself.
	Notes string
	// Failed, when set, says why the run did not complete; the other
	// fields are then not meaningful.
	Failed string
}

// Requests returns the requests of the measured phase.
func (r *Result) Requests() uint64 { return r.Reads + r.Writes }

// RPS returns requests per second.
func (r *Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests()) / r.Elapsed.Seconds()
}

// Per1000 returns n per 1,000 requests.
func (r *Result) Per1000(n uint64) float64 {
	if r.Requests() == 0 {
		return 0
	}
	return float64(n) * 1000 / float64(r.Requests())
}

// ReadWritesPer100 returns the write statements that read-only requests
// caused, per 100 read-only requests: every INSERT, UPDATE and DELETE,
// less one for each write request and one for each conflict. Every
// library here writes a changed session in one statement, run again only
// after a conflict, so the remainder is what read-only requests wrote:
// session touches.
func (r *Result) ReadWritesPer100() float64 {
	if r.Reads == 0 {
		return 0
	}
	extra := float64(r.Stmts.Writes()) - float64(r.Writes) - float64(r.Conflicts)
	return max(extra, 0) * 100 / float64(r.Reads)
}

// Percentile returns the p-th percentile latency (0 < p <= 100).
func (r *Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.Latencies))*p/100+0.5) - 1
	return r.Latencies[min(max(i, 0), len(r.Latencies)-1)]
}

// Progress receives progress lines; nil discards them.
type Progress func(format string, args ...any)

// entrant is one contender started on the database, with its sessions.
type entrant struct {
	res        Result
	inst       Instance
	cl         *clients
	stop       func()
	errsBefore uint64
}

// Run compares contenders on db. It starts every contender and creates
// its sessions, warms each up, then measures them in turn, slice by
// slice: the measured time of each is cut into w.Slices slices run in
// rotation, so that a change of load on the machine during the run
// reaches every contender alike. It then stops the contenders and drops
// their tables. A contender that fails to start or to create its
// sessions gets a Result with Failed set; the others go on.
func Run(ctx context.Context, db *Database, contenders []Contender, w Workload, progress Progress) ([]Result, error) {
	w.defaults()
	if progress == nil {
		progress = func(string, ...any) {}
	}
	var entrants []*entrant
	results := make([]Result, len(contenders))
	defer func() {
		for _, e := range entrants {
			e.stop()
			if err := e.inst.Close(context.WithoutCancel(ctx)); err != nil {
				progress("%s/%s: close: %v", db.Kind, e.res.Contender.Name, err)
			}
		}
	}()
	for i, c := range contenders {
		results[i] = Result{Database: db.Kind, Contender: c}
		e, err := start(ctx, db, c, w, progress)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			results[i].Failed = err.Error()
			progress("%v", err)
			continue
		}
		entrants = append(entrants, e)
	}
	for _, e := range entrants {
		if w.Warmup > 0 {
			e.cl.phase(ctx, w.Warmup, 0, w.Seed^0x9e3779b97f4a7c15)
		}
		e.inst.Mark()
		e.errsBefore, _ = e.inst.MiddlewareErrors()
	}
	slice := w.Duration / time.Duration(w.Slices)
	limit := 0
	if w.Requests > 0 {
		limit = max(1, w.Requests/w.Slices)
	}
	for s := range w.Slices {
		for k := range entrants {
			e := entrants[(k+s)%len(entrants)]
			if err := e.measure(ctx, db, w, s, slice, limit); err != nil {
				return nil, err
			}
		}
	}
	for _, e := range entrants {
		r := &e.res
		if n, first := e.inst.MiddlewareErrors(); n > e.errsBefore {
			r.FirstError = fmt.Sprintf("%s (middleware errors: %d, the first: %s)", r.FirstError, n-e.errsBefore, first)
		}
		slices.Sort(r.Latencies)
		slices.Sort(r.SliceRPS)
		r.Notes = e.inst.Notes()
		r.Conflicts = e.inst.Conflicts()
		progress("%s/%s: %.0f req/s, %d errors", db.Kind, r.Contender.Name, r.RPS(), r.Errors)
		for i := range results {
			if results[i].Contender.Name == r.Contender.Name {
				results[i] = *r
			}
		}
	}
	return results, ctx.Err()
}

// start starts c on db and creates its sessions.
func start(ctx context.Context, db *Database, c Contender, w Workload, progress Progress) (*entrant, error) {
	inst, err := c.Start(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: start: %w", c.Name, db.Kind, err)
	}
	t0 := time.Now()
	tokens, err := createSessions(ctx, db, inst, w)
	if err != nil {
		_ = inst.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("%s on %s: create sessions: %w", c.Name, db.Kind, err)
	}
	e := &entrant{res: Result{Database: db.Kind, Contender: c, Setup: time.Since(t0)}, inst: inst}
	progress("%s/%s: %d sessions created in %v", db.Kind, c.Name, w.Sessions, e.res.Setup.Round(time.Millisecond))
	send, stop := transport(inst.Handler(), w)
	e.stop = stop
	e.cl = &clients{inst: inst, send: send, tokens: tokens, w: w}
	return e, nil
}

// measure runs slice s of the entrant's measured time and adds it to its
// result.
func (e *entrant) measure(ctx context.Context, db *Database, w Workload, s int, d time.Duration, limit int) error {
	if w.CPUProfile != "" {
		name := fmt.Sprintf("%s-%s-%d.pprof", db.Kind, e.res.Contender.Name, s+1)
		f, err := os.Create(filepath.Join(w.CPUProfile, name))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	before := db.Counter.Snapshot()
	ph := e.cl.phase(ctx, d, limit, w.Seed+uint64(s)*1_000_003)
	r := &e.res
	r.Stmts = r.Stmts.Add(db.Counter.Snapshot().Sub(before))
	r.Elapsed += ph.elapsed
	r.Reads += ph.reads
	r.Writes += ph.writes
	r.Errors += ph.errors
	if r.FirstError == "" {
		r.FirstError = ph.firstError
	}
	r.Latencies = append(r.Latencies, ph.latencies...)
	r.SliceRPS = append(r.SliceRPS, float64(ph.reads+ph.writes)/ph.elapsed.Seconds())
	return nil
}

// createSessions creates the sessions with w.Clients workers and returns
// their cookie values. A write that fails with an error the database
// calls transient (SQLite's "database is locked" when its busy timeout
// runs out under the workers' contention, a deadlock) is tried again: the
// setup is not measured, and only a library's behaviour in the measured
// phase counts.
func createSessions(ctx context.Context, db *Database, inst Instance, w Workload) ([]atomic.Pointer[string], error) {
	tokens := make([]atomic.Pointer[string], w.Sessions)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, w.Clients)
	for c := range w.Clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= w.Sessions || ctx.Err() != nil {
					return
				}
				var age time.Duration
				if w.IdleSpread > 0 {
					age = time.Duration(int64(w.IdleSpread) * int64(i) / int64(w.Sessions))
				}
				var tok string
				var err error
				for attempt := 0; attempt < 20; attempt++ {
					tok, err = inst.Create(ctx, i, age)
					if err == nil || db.Dialect.Classify(err) != dialect.Retryable {
						break
					}
					time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
				}
				if err != nil {
					errs[c] = fmt.Errorf("session %d: %w", i, err)
					return
				}
				tokens[i].Store(&tok)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return tokens, ctx.Err()
}

// response is what a client looks at in an answer.
type response struct {
	status     int
	body       []byte
	setCookies []string
}

// transport returns how requests reach the handler: a direct ServeHTTP
// call with a recorder, or a round trip through a loopback server.
func transport(h http.Handler, w Workload) (send func(*http.Request) (response, error), stop func()) {
	if !w.HTTP {
		return func(req *http.Request) (response, error) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return response{status: rec.Code, body: rec.Body.Bytes(), setCookies: rec.Header()["Set-Cookie"]}, nil
		}, func() {}
	}
	srv := httptest.NewServer(h)
	tr := &http.Transport{MaxIdleConns: w.Clients, MaxIdleConnsPerHost: w.Clients, DisableCompression: true}
	client := &http.Client{Transport: tr}
	base := srv.URL
	return func(req *http.Request) (response, error) {
			u := *req.URL
			req.URL, _ = req.URL.Parse(base + u.Path)
			req.Host = req.URL.Host
			resp, err := client.Do(req)
			if err != nil {
				return response{}, err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			return response{status: resp.StatusCode, body: body, setCookies: resp.Header["Set-Cookie"]}, err
		}, func() {
			tr.CloseIdleConnections()
			srv.Close()
		}
}

type clients struct {
	inst   Instance
	send   func(*http.Request) (response, error)
	tokens []atomic.Pointer[string]
	w      Workload
}

type phaseResult struct {
	elapsed       time.Duration
	reads, writes uint64
	errors        uint64
	firstError    string
	latencies     []time.Duration
}

// phase runs the clients for d, or until limit requests when limit is
// positive.
func (cl *clients) phase(ctx context.Context, d time.Duration, limit int, seed uint64) phaseResult {
	var stopped atomic.Bool
	var sent atomic.Int64
	timer := time.AfterFunc(d, func() { stopped.Store(true) })
	defer timer.Stop()
	type clientResult struct {
		reads, writes, errors uint64
		firstError            string
		latencies             []time.Duration
	}
	results := make([]clientResult, cl.w.Clients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range cl.w.Clients {
		wg.Go(func() {
			r := &results[c]
			r.latencies = make([]time.Duration, 0, 1<<14)
			rng := rand.New(rand.NewPCG(seed, uint64(c)))
			for !stopped.Load() && ctx.Err() == nil {
				if limit > 0 && sent.Add(1) > int64(limit) {
					return
				}
				i := rng.IntN(len(cl.tokens))
				write := rng.Float64() < cl.w.WriteShare
				t0 := time.Now()
				err := cl.request(ctx, i, write)
				r.latencies = append(r.latencies, time.Since(t0))
				if write {
					r.writes++
				} else {
					r.reads++
				}
				if err != nil {
					r.errors++
					if r.firstError == "" {
						r.firstError = err.Error()
					}
				}
			}
		})
	}
	wg.Wait()
	out := phaseResult{elapsed: time.Since(start)}
	for _, r := range results {
		out.reads += r.reads
		out.writes += r.writes
		out.errors += r.errors
		if out.firstError == "" {
			out.firstError = r.firstError
		}
		out.latencies = append(out.latencies, r.latencies...)
	}
	slices.Sort(out.latencies)
	return out
}

const (
	readURL  = "http://bench.test/read"
	writeURL = "http://bench.test/write"
)

var okBody = []byte("ok")

// request sends one request for session i as its browser would, with the
// session cookie, checks the answer, and keeps the cookie the answer
// sets.
func (cl *clients) request(ctx context.Context, i int, write bool) error {
	tok := cl.tokens[i].Load()
	method, u := http.MethodGet, readURL
	if write {
		method, u = http.MethodPost, writeURL
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	name := cl.inst.CookieName()
	req.Header.Set("Cookie", name+"="+*tok)
	resp, err := cl.send(req)
	if err != nil {
		return err
	}
	if resp.status != http.StatusOK {
		return fmt.Errorf("%s %s: status %d: %s", method, u, resp.status, bytes.TrimSpace(resp.body))
	}
	want := okBody
	if !write {
		want = strconv.AppendInt(nil, int64(i+1), 10)
	}
	if !bytes.Equal(resp.body, want) {
		return fmt.Errorf("%s %s: answered %q, want %q", method, u, resp.body, want)
	}
	for _, line := range resp.setCookies {
		c, err := http.ParseSetCookie(line)
		if err != nil || c.Name != name {
			continue
		}
		if c.Value == "" || c.MaxAge < 0 {
			return fmt.Errorf("%s %s: the session cookie was cleared", method, u)
		}
		if c.Value != *tok {
			v := c.Value
			cl.tokens[i].CompareAndSwap(tok, &v)
		}
	}
	return nil
}
