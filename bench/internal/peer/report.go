package peer

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/visitsession/visitsession/bench/internal/countdriver"
)

// Targets are the ratios visitsession is held to on every database.
const (
	// TargetOverIdle is the least visitsession's req/s over scs's with
	// IdleTimeout set.
	TargetOverIdle = 1.5
	// TargetOverPlain is the least visitsession's req/s over scs's
	// without IdleTimeout.
	TargetOverPlain = 1.0
	// TargetReadWrites is the most write statements per 100 read-only
	// requests.
	TargetReadWrites = 1.0
)

// Machine describes where the run happened.
type Machine struct {
	GoVersion, OS, Arch, CPU string
	CPUs, GOMAXPROCS         int
	// LoadBefore and LoadAfter are the 1, 5 and 15 minute load averages.
	LoadBefore, LoadAfter string
}

// ThisMachine returns the machine's description, with the current load
// average as LoadBefore.
func ThisMachine() Machine {
	return Machine{
		GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		CPU: cpuModel(), CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		LoadBefore: LoadAverage(),
	}
}

// LoadAverage returns the 1, 5 and 15 minute load averages, or "n/a".
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// Libraries returns the module versions of the libraries and drivers
// compared, as built into this binary.
func Libraries() []string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	var out []string
	for _, d := range bi.Deps {
		switch {
		case strings.HasPrefix(d.Path, "github.com/alexedwards/scs"),
			d.Path == "github.com/jackc/pgx/v5", d.Path == "github.com/go-sql-driver/mysql",
			d.Path == "modernc.org/sqlite":
			out = append(out, d.Path+" "+d.Version)
		case d.Path == "github.com/visitsession/visitsession":
			v := d.Version
			if d.Replace != nil {
				v = "(this tree)"
			}
			out = append(out, d.Path+" "+v)
		}
	}
	return out
}

// Report is the outcome of one invocation.
type Report struct {
	// Command is the command line that produced the report.
	Command string
	// Started is when the invocation began.
	Started time.Time
	// Workload is the workload of every run.
	Workload Workload
	// Pool is the connection pool size.
	Pool int
	// Machine describes the machine.
	Machine Machine
	// Versions maps a database kind to its server's version.
	Versions map[string]string
	// Libraries lists module versions.
	Libraries []string
	// Results holds every contender's result on every database.
	Results []Result
}

// Target is the verdict on one database.
type Target struct {
	Database                string
	OverIdle, OverPlain     float64
	ReadWrites              float64
	MetIdle, MetPlain, MetW bool
}

// Met reports whether every target was met.
func (t Target) Met() bool { return t.MetIdle && t.MetPlain && t.MetW }

// Targets compares visitsession with both scs configurations on every
// database where all three completed.
func (r *Report) Targets() []Target {
	var out []Target
	var dbs []string
	for _, res := range r.Results {
		if !slices.Contains(dbs, res.Database) {
			dbs = append(dbs, res.Database)
		}
	}
	for _, db := range dbs {
		var vs, idle, plain *Result
		for i := range r.Results {
			res := &r.Results[i]
			if res.Database != db || res.Failed != "" {
				continue
			}
			switch res.Contender.Name {
			case "visitsession":
				vs = res
			case "scs-idle":
				idle = res
			case "scs":
				plain = res
			}
		}
		if vs == nil || idle == nil || plain == nil || idle.RPS() == 0 || plain.RPS() == 0 {
			continue
		}
		t := Target{
			Database:   db,
			OverIdle:   vs.RPS() / idle.RPS(),
			OverPlain:  vs.RPS() / plain.RPS(),
			ReadWrites: vs.ReadWritesPer100(),
		}
		t.MetIdle = t.OverIdle >= TargetOverIdle
		t.MetPlain = t.OverPlain >= TargetOverPlain
		t.MetW = t.ReadWrites <= TargetReadWrites
		out = append(out, t)
	}
	return out
}

// Markdown writes the report as Markdown.
func (r *Report) Markdown(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	m := r.Machine
	wl := r.Workload
	wl.defaults()
	p("## Peer comparison: visitsession and alexedwards/scs\n\n")
	p("Command: `%s` (started %s).\n\n", r.Command, r.Started.UTC().Format("2006-01-02 15:04 MST"))
	p("- Machine: %s/%s, %s, %d CPUs, GOMAXPROCS %d, %s; load average (1, 5, 15 min) %s before, %s after. "+
		"The clients, the middleware, the drivers (and SQLite itself) run in this process; the PostgreSQL and MariaDB servers on the same cores.\n",
		m.OS, m.Arch, m.CPU, m.CPUs, m.GOMAXPROCS, m.GoVersion, m.LoadBefore, m.LoadAfter)
	for _, k := range Kinds {
		if v, ok := r.Versions[k]; ok {
			p("- %s: %s\n", k, v)
		}
	}
	if len(r.Libraries) > 0 {
		p("- Modules: %s\n", strings.Join(r.Libraries, ", "))
	}
	how := "direct ServeHTTP calls"
	if wl.HTTP {
		how = "HTTP/1.1 over loopback (httptest.Server)"
	}
	measure := fmt.Sprintf("%v", wl.Duration)
	if wl.Requests > 0 {
		measure = fmt.Sprintf("%d requests (at most %v)", wl.Requests, wl.Duration)
	}
	p("- Workload: %d sessions of ten values created first through each library; %d concurrent clients sending, with the session cookie, "+
		"%.0f%% GET /read (reads user_id) and %.0f%% POST /write (sets cart_items), uniformly over the sessions, through each library's middleware by %s. "+
		"Each configuration is measured for %s after a %v warm-up, in %d slices run in rotation with the other configurations' slices, so that load from elsewhere on the machine reaches all alike. "+
		"One pool of %d connections per database, shared by all configurations; fresh tables.\n",
		wl.Sessions, wl.Clients, 100*(1-wl.WriteShare), 100*wl.WriteShare, how, measure, wl.Warmup, wl.Slices, r.Pool)
	if wl.IdleSpread > 0 {
		p("- visitsession's sessions were created as last used between 0 and %v ago (scs cannot backdate a session; its write pattern does not depend on it).\n", wl.IdleSpread)
	}
	p("\n")

	p("| database | library | req/s | slices' req/s | p50 | p99 | SELECT | INSERT | UPDATE | DELETE | other | prepares | writes per 100 reads | errors |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for i := range r.Results {
		t := &r.Results[i]
		if t.Failed != "" {
			p("| %s | %s | failed | | | | | | | | | | | |\n", t.Database, t.Contender.Title)
			continue
		}
		spread := ""
		if n := len(t.SliceRPS); n > 0 {
			spread = fmt.Sprintf("%.0f–%.0f", t.SliceRPS[0], t.SliceRPS[n-1])
		}
		p("| %s | %s | %.0f | %s | %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.2f | %d |\n",
			t.Database, t.Contender.Title, t.RPS(), spread, fmtDur(t.Percentile(50)), fmtDur(t.Percentile(99)),
			t.Per1000(t.Stmts.Get(countdriver.Select)), t.Per1000(t.Stmts.Get(countdriver.Insert)),
			t.Per1000(t.Stmts.Get(countdriver.Update)), t.Per1000(t.Stmts.Get(countdriver.Delete)),
			t.Per1000(t.Stmts.Get(countdriver.Other)), t.Per1000(t.Stmts.Prepares), t.ReadWritesPer100(), t.Errors)
	}
	p("\nreq/s is all requests over all slices; \"slices' req/s\" is the lowest and highest slice. " +
		"Statement columns are statements per 1,000 requests, counted by a database/sql driver wrapper around each driver " +
		"(an upsert, INSERT ... ON CONFLICT/ON DUPLICATE KEY or REPLACE, counts as INSERT; \"prepares\" are separate prepare round trips). " +
		"\"writes per 100 reads\" is the INSERT, UPDATE and DELETE statements beyond one per write request (and one per merge conflict), per 100 read-only requests.\n")

	if ts := r.Targets(); len(ts) > 0 {
		p("\n| database | visitsession ÷ scs with IdleTimeout (≥ %.1f) | visitsession ÷ scs without (≥ %.1f) | visitsession writes per 100 read-only requests (≤ %.0f) | all met |\n",
			TargetOverIdle, TargetOverPlain, TargetReadWrites)
		p("|---|---:|---:|---:|---|\n")
		for _, t := range ts {
			p("| %s | %.2f× %s | %.2f× %s | %.2f %s | %s |\n", t.Database,
				t.OverIdle, mark(t.MetIdle), t.OverPlain, mark(t.MetPlain), t.ReadWrites, mark(t.MetW), yesNo(t.Met()))
		}
	}

	var notes []string
	for _, res := range r.Results {
		if res.Failed != "" {
			notes = append(notes, fmt.Sprintf("%s, %s: failed: %s", res.Database, res.Contender.Title, res.Failed))
		}
		if res.FirstError != "" {
			notes = append(notes, fmt.Sprintf("%s, %s: first error: %s", res.Database, res.Contender.Title, res.FirstError))
		}
		if res.Notes != "" {
			notes = append(notes, fmt.Sprintf("%s, %s: %s", res.Database, res.Contender.Title, res.Notes))
		}
	}
	if len(notes) > 0 {
		p("\n")
		for _, n := range notes {
			p("- %s\n", n)
		}
	}
}

func mark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}
