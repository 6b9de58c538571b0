package session_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/visitsession/visitsession/dialect"
	"github.com/visitsession/visitsession/internal/testdb"
	"github.com/visitsession/visitsession/session"
	"github.com/visitsession/visitsession/visit"
)

// Environment of a worker process started by multiProcess.
const (
	envHelper = "VISITSESSION_HELPER_PROCESS" // "1" in a worker
	envDriver = "VISITSESSION_HELPER_DRIVER"
	envDSN    = "VISITSESSION_HELPER_DSN"
	envTable  = "VISITSESSION_HELPER_TABLE"
	envToken  = "VISITSESSION_HELPER_TOKEN"
	envMode   = "VISITSESSION_HELPER_MODE"
	envWorker = "VISITSESSION_HELPER_WORKER"
	envOps    = "VISITSESSION_HELPER_OPS"
)

// workerReport is what a worker prints on stdout.
type workerReport struct {
	Saves     int           `json:"saves"`
	Conflicts uint64        `json:"conflicts"`
	Retries   uint64        `json:"retries"`
	Requests  int           `json:"requests"` // requests run again after a transient error
	Elapsed   time.Duration `json:"elapsed"`
}

// TestHelperProcess is the body of a worker process of the multi-process
// tests; run directly, it does nothing. A worker opens its own pool on the
// database named in its environment, prints "ready" and waits for a line
// on stdin, so that all workers start together. Then, ops times, it loads
// the shared session, sets a key of its own ("w<worker>-<op>") and, in
// Locked mode, increments the shared counter "n", then saves. A save that
// fails with a transient error (one the dialect classifies as retryable,
// or ErrConflict) wrote nothing; the worker then runs the whole request
// again, as an application would, and counts it. It ends by printing its
// report as JSON.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(envHelper) != "1" {
		return
	}
	rep, err := runWorker()
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(3)
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		os.Exit(4)
	}
}

func runWorker() (workerReport, error) {
	var rep workerReport
	worker, _ := strconv.Atoi(os.Getenv(envWorker))
	ops, _ := strconv.Atoi(os.Getenv(envOps))
	mode, _ := strconv.Atoi(os.Getenv(envMode))
	d := map[string]dialect.Dialect{"pgx": dialect.Postgres(), "mysql": dialect.MySQL(), "sqlite": dialect.SQLite()}[os.Getenv(envDriver)]
	if d == nil || ops <= 0 {
		return rep, fmt.Errorf("bad worker environment")
	}
	db, err := sql.Open(os.Getenv(envDriver), os.Getenv(envDSN))
	if err != nil {
		return rep, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := session.Open(ctx, db, d, session.WithTable(visit.Default().WithName(os.Getenv(envTable))),
		session.WithMode(session.Mode(mode)), session.WithLockTimeout(time.Minute),
		// Four processes saving one session back to back, on two cores
		// shared with the databases, is a hotter session than the
		// default of 8 attempts is sized for: a Merge-mode save may then
		// lose 8 times in a row and give ErrConflict (as documented).
		// The test is about correctness under that contention, so its
		// store allows more attempts.
		session.WithMaxAttempts(32))
	if err != nil {
		return rep, err
	}
	defer st.Close()
	token := os.Getenv(envToken)
	if err := db.PingContext(ctx); err != nil {
		return rep, err
	}
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return rep, fmt.Errorf("waiting for the start: %w", err)
	}
	start := time.Now()
	for op := 0; op < ops; {
		s, err := st.Load(ctx, token)
		if err != nil {
			return rep, fmt.Errorf("op %d: load: %w", op, err)
		}
		if s.IsNew() {
			return rep, fmt.Errorf("op %d: the shared session is gone", op)
		}
		s.Set(fmt.Sprintf("w%d-%d", worker, op), op)
		if session.Mode(mode) == session.Locked {
			s.Set("n", s.GetInt("n")+1)
		}
		if err := st.Save(ctx, s); err != nil {
			if (d.Classify(err) == dialect.Retryable || errors.Is(err, session.ErrConflict)) && rep.Requests < 100 {
				rep.Requests++
				continue
			}
			return rep, fmt.Errorf("op %d: save: %w", op, err)
		}
		rep.Saves++
		op++
	}
	rep.Elapsed = time.Since(start)
	stats := st.Stats()
	rep.Conflicts, rep.Retries = stats.Conflicts, stats.Retries
	return rep, nil
}

// TestMultiProcess runs 3 worker processes of 20 operations each on one
// session, in Locked mode.
func TestMultiProcess(t *testing.T) {
	multiProcess(t, "locked", []session.Mode{session.Locked, session.Locked, session.Locked}, 20)
}

// TestStressMultiProcess runs 4 worker processes of 150 operations each on
// one session: all in Merge mode, all in Locked mode, then two of each.
func TestStressMultiProcess(t *testing.T) {
	needStress(t)
	for _, c := range []struct {
		name  string
		modes []session.Mode
	}{
		{"merge", []session.Mode{session.Merge, session.Merge, session.Merge, session.Merge}},
		{"locked", []session.Mode{session.Locked, session.Locked, session.Locked, session.Locked}},
		{"mixed", []session.Mode{session.Locked, session.Merge, session.Locked, session.Merge}},
	} {
		multiProcess(t, c.name, c.modes, 150)
	}
}

// multiProcess re-executes the test binary as worker processes, one per
// entry of modes, that hammer one database and one session at once, as
// the instances of an application do: each sets keys of its own, and the
// Locked-mode workers also increment a shared counter by read-modify-write.
// At the end every key every worker set is there, and the counter is
// exactly the number of Locked-mode operations: the merge-mode writes of
// other keys, which do not hold the lock, never undo an increment.
//
// When all workers use one mode, no request may need running again. When
// modes are mixed, a Locked-mode transaction can lose a deadlock against a
// merge-mode UPDATE on MariaDB, whose optimizer may run the UPDATE of a
// small table through the expiry index, locking index entries before the
// row; such requests are run again and counted in the log.
func multiProcess(t *testing.T, name string, modes []session.Mode, ops int) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Run(name, func(t *testing.T) {
		testdb.Each(t, func(t *testing.T, tg *testdb.Target) {
			t.Parallel() // the databases and the workers do the work
			tab := tg.CreateTable(t)
			st := openOn(t, tg.DB, tg, tab)
			tok := seed(t, st, map[string]any{"n": 0})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			envs := make([][]string, len(modes))
			lockedOps := 0
			for w, m := range modes {
				envs[w] = []string{
					envDriver + "=" + tg.Driver, envDSN + "=" + tg.DSN, envTable + "=" + tab.Name, envToken + "=" + tok,
					envMode + "=" + strconv.Itoa(int(m)), envOps + "=" + strconv.Itoa(ops),
				}
				if m == session.Locked {
					lockedOps += ops
				}
			}
			procs := startWorkers(ctx, t, exe, envs)
			var total workerReport
			for w, wk := range procs {
				out, err := wk.finish()
				if err != nil {
					t.Fatalf("worker %d: %v\n%s", w, err, out)
				}
				var rep workerReport
				if err := json.Unmarshal(lastLine(out), &rep); err != nil || rep.Saves != ops {
					t.Fatalf("worker %d report: %v %+v\n%s", w, err, rep, out)
				}
				total.Saves += rep.Saves
				total.Conflicts += rep.Conflicts
				total.Retries += rep.Retries
				total.Requests += rep.Requests
				total.Elapsed = max(total.Elapsed, rep.Elapsed)
			}
			mixed := slices.Contains(modes, session.Merge) && slices.Contains(modes, session.Locked)
			if !mixed && total.Requests > 0 {
				t.Fatalf("%d requests had to be run again with all workers in one mode", total.Requests)
			}
			got := read(t, st, tok)
			for w := range modes {
				for op := range ops {
					if v := got[fmt.Sprintf("w%d-%d", w, op)]; v != op {
						t.Fatalf("w%d-%d = %v, want %d", w, op, v, op)
					}
				}
			}
			if want := len(modes)*ops + 1; len(got) != want {
				t.Fatalf("%d values, want %d", len(got), want)
			}
			if got["n"] != lockedOps {
				t.Fatalf("counter n = %v, want %d", got["n"], lockedOps)
			}
			t.Logf("%s/%s: %d processes × %d saves in %v: %d conflicts (%.3f per save), %d retries (%.3f per save), %d requests run again",
				name, tg.Kind, len(modes), ops, total.Elapsed.Round(time.Millisecond), total.Conflicts,
				float64(total.Conflicts)/float64(total.Saves), total.Retries, float64(total.Retries)/float64(total.Saves), total.Requests)
		})
	})
}

// worker is a running worker process.
type worker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	rest  bytes.Buffer
}

// startWorkers starts one worker per entry of envs, with that entry added
// to the test's environment, waits until each has printed "ready", then
// lets them all go.
func startWorkers(ctx context.Context, t *testing.T, exe string, envs [][]string) []*worker {
	t.Helper()
	ws := make([]*worker, len(envs))
	for i, env := range envs {
		cmd := exec.CommandContext(ctx, exe, "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(append(os.Environ(), envHelper+"=1", envWorker+"="+strconv.Itoa(i)), env...)
		w := &worker{cmd: cmd}
		cmd.Stderr = &w.rest
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		w.stdin, w.out = stdin, bufio.NewReader(stdout)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		ws[i] = w
	}
	for i, w := range ws {
		line, err := w.out.ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "ready" {
			rest, _ := io.ReadAll(w.out)
			t.Fatalf("worker %d did not get ready: %q %v\n%s%s", i, line, err, rest, w.rest.Bytes())
		}
	}
	for _, w := range ws {
		if _, err := io.WriteString(w.stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	return ws
}

// finish waits for the worker to exit and returns all it printed.
func (w *worker) finish() ([]byte, error) {
	var out bytes.Buffer
	_, _ = io.Copy(&out, w.out)
	err := w.cmd.Wait()
	out.Write(w.rest.Bytes())
	return out.Bytes(), err
}

// lastLine returns the last non-empty line of b: a worker's report follows
// whatever the test framework printed.
func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		if l := bytes.TrimSpace(lines[i]); bytes.HasPrefix(l, []byte("{")) {
			return l
		}
	}
	return nil
}
