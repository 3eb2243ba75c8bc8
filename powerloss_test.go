package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"conveyor/internal/lossyfs"
)

// TestPowerLoss is the kill loop on a data directory that loses its unsynced
// writes: the server runs on the lossy filesystem under a load of HTTP
// enqueues (SleepJobs, and FailJobs whose failure rows go to the database);
// at random moments it is SIGKILLed and the power is cut (each block written
// since its file's last sync survives or not, at random); then the queue
// file checks, the database passes PRAGMA integrity_check, the server
// starts, and every acknowledged enqueue is there as it was sent. At the end
// the history holds: every acknowledged job completed, none ran again after
// it was seen done. 3 cuts in `make test`, 30 in `make chaos`.
func TestPowerLoss(t *testing.T) {
	t.Parallel()
	cuts := 3
	if os.Getenv("CONVEYOR_CHAOS") != "" {
		cuts = 30
	}
	fsys := lossyfs.MountT(t)
	rig, problem := powerLoss(t, fsys, nil, cuts, -1)
	if problem != "" {
		t.Fatalf("after a power cut (seed %d): %s", rig.seed, problem)
	}
	rig.cur.waitDrained(t)
	if problem := verifyAcked(deadline(t), rig, 0); problem != "" {
		t.Fatal(problem)
	}
	if err, _ := rig.cur.terminate(); err != nil {
		t.Fatalf("server exit on SIGTERM: %v\n%s", err, rig.cur.stderr.String())
	}
	r := checkHistory(readLines(t, rig.execLog), rig.ackedIDs())
	t.Logf("%d enqueues acknowledged, %d power cuts: %d re-runs, %d jobs in flight at the cuts", len(rig.acked), cuts, r.duplicates, r.inflightTotal)
	if !r.ok() {
		t.Fatalf("history check failed (seed %d): %v", rig.seed, r)
	}
}

// powerLoss runs the server on fsys under load (env: its environment, nil
// for the default) and cuts the power cuts times, keeping that share of the
// unsynced blocks (negative: a random share each time), checking after each;
// it returns the rig with the load stopped, the server running, and the
// first loss or damage found ("" when none).
func powerLoss(t *testing.T, fsys *lossyfs.FS, env []string, cuts int, keep float64) (*crashRig, string) {
	dir := t.TempDir()
	data := filepath.Join(fsys.Dir, "data")
	// No replica: the data directory alone is under test.
	rig := newCrashRig(t, data, filepath.Join(dir, "exec.log"), env, "--replica", "off")
	stopLoad := rig.load(10)
	defer stopLoad()
	ctx := deadline(t)
	checked := 0
	for c := range cuts {
		rig.work()
		if problem := rig.powerCut(fsys, keep); problem != "" {
			return rig, problem
		}
		if problem := verifyAcked(ctx, rig, checked); problem != "" {
			return rig, problem
		}
		rig.mu.Lock()
		checked = len(rig.acked)
		rig.mu.Unlock()
		t.Logf("power cut %d done", c+1)
	}
	time.Sleep(300 * time.Millisecond)
	return rig, ""
}

// powerCut SIGKILLs the server, cuts the power (keep: the share of the
// unsynced blocks that survives; negative: a random share), checks the queue file and the database as the
// cut left them, and starts the next server. It returns what it found
// wrong, or "".
func (r *crashRig) powerCut(fsys *lossyfs.FS, keep float64) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur.kill()
	if err := appendLine(r.execLog, "kill"); err != nil {
		r.t.Fatal(err)
	}
	if keep < 0 {
		keep = r.rnd.Float64()
	}
	got, err := fsys.Cut(keep, r.rnd.Uint64())
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Logf("cut (keeping %.0f%% of the unsynced blocks): %s", keep*100, got)
	if err := checkStoreFileErr(r.data); err != nil {
		return fmt.Sprintf("the queue file does not check: %v", err)
	}
	if res, err := integrityCheck(filepath.Join(r.data, dbFile)); err != nil || res != "ok" {
		return fmt.Sprintf("the database does not check: %q %v", res, err)
	}
	env := r.env
	if env == nil {
		env = append(os.Environ(), beMainEnv+"=1", "CONVEYOR_TOKEN="+testToken)
	}
	s, err := launchServer(r.t, r.data, env, r.args...)
	if err != nil {
		return fmt.Sprintf("the server does not start: %v\n%s", err, s.stderr.String())
	}
	r.cur = s
	return ""
}

// verifyAcked checks that every acknowledged enqueue from the from'th on,
// and a sample of 100 earlier ones, is there as it was sent (its tag);
// it returns the first that is not, or "".
func verifyAcked(ctx context.Context, r *crashRig, from int) string {
	r.mu.Lock()
	all := append([]ackedJob(nil), r.acked...)
	s := r.cur
	r.mu.Unlock()
	check := all[min(from, len(all)):]
	for _, i := range r.rnd.Perm(min(from, len(all)))[:min(from, 100)] {
		check = append(check, all[i])
	}
	for _, a := range check {
		var j struct {
			State   string            `json:"state"`
			Context map[string]string `json:"context"`
		}
		code, err := s.api(ctx, http.MethodGet, fmt.Sprintf("/api/v1/jobs/%d", a.id), nil, &j)
		if err != nil {
			return fmt.Sprintf("get job %d: %v", a.id, err)
		}
		if code != http.StatusOK || j.Context["tag"] != a.token {
			return fmt.Sprintf("acknowledged job %d (%s %s) is lost: %d, found %+v", a.id, a.class, a.token, code, j)
		}
	}
	return ""
}

// integrityCheck runs PRAGMA integrity_check on a database no server has
// open (recovering its WAL first, as the next server would).
func integrityCheck(path string) (string, error) {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var res []string
	rows, err := db.Query("PRAGMA integrity_check")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return "", err
		}
		res = append(res, s)
	}
	return strings.Join(res, "; "), rows.Err()
}

// TestSyncErrorRefusesWrites: when the queue file's sync fails (EIO from the
// lossy filesystem, as from a dying disk) the enqueue in that commit gets a
// 503 saying writes are refused until a restart; every write after it is
// refused too, even once syncs work again (the kernel may have dropped the
// pages it could not write while reporting the next sync fine), and /readyz
// is red saying so. After a restart, and a power cut that loses everything
// unsynced, every enqueue acknowledged before the failure is there, none
// after it was acknowledged, and writes work again.
func TestSyncErrorRefusesWrites(t *testing.T) {
	t.Parallel()
	fsys := lossyfs.MountT(t)
	ctx := deadline(t)
	data := filepath.Join(fsys.Dir, "data")
	args := []string{"--schedule", emptySchedule(t), "--replica", "off"}
	srv := startServer(t, data, args...)
	if code, err := srv.api(ctx, http.MethodPost, "/api/v1/queues/"+heldQueue+"/pause", nil, nil); err != nil || code != http.StatusOK {
		t.Fatalf("pause: %d %v", code, err)
	}
	enqueue := func(tag string) (int, string, uint64) {
		return srv.tryEnqueue(ctx, t, map[string]any{"class": "NoopJob", "queue": heldQueue, "context": map[string]string{"tag": tag}})
	}
	acked := map[uint64]string{}
	for i := range 20 {
		tag := fmt.Sprintf("before-%d", i)
		code, body, id := enqueue(tag)
		if code != http.StatusCreated {
			t.Fatalf("enqueue: %d %s", code, body)
		}
		acked[id] = tag
	}

	if err := fsys.FailSyncs(true); err != nil {
		t.Fatal(err)
	}
	const refused = "writes are refused until the server restarts"
	code, body, _ := enqueue("at-the-failure")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, refused) {
		t.Fatalf("enqueue whose sync failed: %d %s", code, body)
	}
	if err := fsys.FailSyncs(false); err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // syncs work again; the store still refuses until restarted
		if code, body, _ := enqueue(fmt.Sprintf("after-%d", i)); code != http.StatusServiceUnavailable || !strings.Contains(body, refused) {
			t.Fatalf("enqueue after a failed sync: %d %s", code, body)
		}
	}
	var ready string
	if code, err := srv.raw(ctx, "/readyz", &ready); err != nil || code != http.StatusServiceUnavailable ||
		!strings.Contains(ready, "could not be written") || !strings.Contains(ready, "restarts") || !strings.Contains(ready, "input/output error") {
		t.Fatalf("/readyz after a failed sync: %d %v %s", code, err, ready)
	}
	if log := srv.stderr.String(); !strings.Contains(log, "refusing writes until restart") {
		t.Fatalf("the server did not log the failed sync:\n%s", log)
	}
	stats, _ := fsys.Stats()
	t.Logf("lossyfs: %s; /readyz: %s", stats, ready)

	srv.kill()
	if _, err := fsys.Cut(0, 1); err != nil {
		t.Fatal(err)
	}
	checkStoreFile(t, data)
	srv = startServer(t, data, args...)
	for id, tag := range acked {
		var j struct {
			Context map[string]string `json:"context"`
		}
		if code, err := srv.api(ctx, http.MethodGet, fmt.Sprintf("/api/v1/jobs/%d", id), nil, &j); err != nil || code != http.StatusOK || j.Context["tag"] != tag {
			t.Fatalf("job %d (%s) acknowledged before the failed sync: %d %v %+v", id, tag, code, err, j)
		}
	}
	var page struct {
		Jobs []struct {
			Context map[string]string `json:"context"`
		} `json:"jobs"`
	}
	if code, err := srv.api(ctx, http.MethodGet, "/api/v1/jobs?state=ready&queue="+heldQueue+"&size=1000", nil, &page); err != nil || code != http.StatusOK {
		t.Fatalf("list: %d %v", code, err)
	}
	if len(page.Jobs) != len(acked) {
		t.Fatalf("%d jobs after the restart, %d acknowledged: %+v", len(page.Jobs), len(acked), page.Jobs)
	}
	if code, body, _ := enqueue("after-restart"); code != http.StatusCreated {
		t.Fatalf("enqueue after the restart: %d %s", code, body)
	}
	if code, err := srv.raw(ctx, "/readyz", &ready); err != nil || code != http.StatusOK {
		t.Fatalf("/readyz after the restart: %d %v %s", code, err, ready)
	}
	if err, _ := srv.terminate(); err != nil {
		t.Fatalf("stop: %v\n%s", err, srv.stderr.String())
	}
}
