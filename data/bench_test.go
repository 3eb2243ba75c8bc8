package data

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"conveyor/ops/fault"
)

// benchRows is the size of the failures table BenchmarkFindFailures1M
// queries.
const benchRows = 1_000_000

// benchGen versions the generator below: bump it when the data changes so
// that a cached database is rebuilt.
const benchGen = 3

// benchNow is the "now" of the generated data: failures span the 30 days
// before it.
var benchNow = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// benchDB returns a database with benchRows failures, built once and cached
// under os.TempDir() keyed by schema version, migration contents and
// generator version.
func benchDB(b *testing.B) *DB {
	b.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("conveyor-bench-failures-s%d-%s-g%d-n%d.db", SchemaVersion(), schemaHash(b), benchGen, benchRows))
	if _, err := os.Stat(path); err != nil {
		start := time.Now()
		if err := buildBenchDB(b.Context(), path); err != nil {
			b.Fatal(err)
		}
		b.Logf("built %s in %s", path, time.Since(start).Round(time.Millisecond))
	}
	db, err := Open(b.Context(), path, Options{Now: func() time.Time { return benchNow }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// schemaHash fingerprints the embedded migrations, so that a cached
// database is rebuilt whenever a script changes.
func schemaHash(b *testing.B) string {
	h := sha256.New()
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range ms {
		h.Write([]byte(m.name))
		h.Write([]byte(m.sql))
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// buildBenchDB writes the cached database: schema by Open, then the rows
// with the indexes and roll-up triggers dropped (recreated afterwards from
// their own SQL), in big transactions of multi-row inserts.
func buildBenchDB(ctx context.Context, path string) error {
	tmp := path + ".building"
	for _, p := range []string{tmp, tmp + "-wal", tmp + "-shm"} {
		_ = os.Remove(p)
	}
	db, err := Open(ctx, tmp, Options{})
	if err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	raw, err := sql.Open("sqlite", "file:"+escapePath(tmp)+"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)&_pragma=cache_size(-262144)")
	if err != nil {
		return err
	}
	defer raw.Close()
	raw.SetMaxOpenConns(1)

	type object struct{ typ, name, sql string }
	var objs []object
	rows, err := raw.QueryContext(ctx, `SELECT type, name, sql FROM sqlite_master
		WHERE tbl_name = 'failures' AND type IN ('index', 'trigger') AND sql IS NOT NULL`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var o object
		if err := rows.Scan(&o.typ, &o.name, &o.sql); err != nil {
			return err
		}
		objs = append(objs, o)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	for _, o := range objs {
		if _, err := raw.ExecContext(ctx, "DROP "+strings.ToUpper(o.typ)+" "+o.name); err != nil {
			return err
		}
	}

	r := newBenchRand()
	const chunk = 500
	stmt := insertFailuresSQL(chunk)
	args := make([]any, 0, chunk*failureInsertArity)
	id := int64(0)
	for done := 0; done < benchRows; {
		tx, err := raw.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		st, err := tx.PrepareContext(ctx, stmt)
		if err != nil {
			return err
		}
		for k := 0; k < 200 && done < benchRows; k++ {
			args = args[:0]
			for range chunk {
				id++
				f := benchFailure(r, id)
				args = f.insertArgs(args)
			}
			if _, err := st.ExecContext(ctx, args...); err != nil {
				return err
			}
			done += chunk
		}
		st.Close()
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	for _, o := range objs {
		if _, err := raw.ExecContext(ctx, o.sql); err != nil {
			return err
		}
	}
	if _, err := raw.ExecContext(ctx, `INSERT INTO failure_counts (kind, queue, class, error_class, retry_status, retryable, n)
		SELECT kind, queue, class, error_class, retry_status, retryable, count(*) FROM failures GROUP BY 1, 2, 3, 4, 5, 6`); err != nil {
		return err
	}
	if _, err := raw.ExecContext(ctx, `INSERT INTO failure_hours (hour, kind, queue, class, error_class, retry_status, retryable, n)
		SELECT occurred_at / 3600000 * 3600000, kind, queue, class, error_class, retry_status, retryable, count(*)
		  FROM failures GROUP BY 1, 2, 3, 4, 5, 6, 7`); err != nil {
		return err
	}
	if _, err := raw.ExecContext(ctx, `ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);`); err != nil {
		return err
	}
	if err := raw.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func newBenchRand() *rand.Rand { return rand.New(rand.NewPCG(42, 42)) }

var (
	benchClasses = func() []string {
		var s []string
		for _, n := range []string{"ProfileRefresh", "CaptureHomeFeed", "AvatarSync", "StoryAutoReply", "FeedAutoEngagement",
			"FollowGraphSync", "PostDownload", "StoryDownload", "AiVisualAnalysis", "AiFaceDetect", "AiOcr", "VideoProcessing",
			"AiMetadata", "FrameGeneration", "MessageSync", "PurgeExpiredMedia", "RecentProfilePostScan", "EngagementSend",
			"CheckQueueHealth", "CheckAiMicroserviceHealth"} {
			s = append(s, n+"Job", n+"BatchJob")
		}
		return s
	}()
	benchQueues = []string{"sync", "engagements", "story_downloads", "post_downloads", "profiles", "messages", "avatars",
		"maintenance", "default", "ai", "ai_visual_queue", "ai_face_queue", "ai_ocr_queue", "video_processing_queue",
		"ai_metadata_queue", "frame_generation"}
	benchErrors = []struct {
		class, msg string
		kind       fault.Kind
	}{
		{"Net::ReadTimeout", "Net::ReadTimeout with #<TCPSocket:(closed)> after %d ms", fault.Transient},
		{"HTTP::TooManyRequests", "429 Too Many Requests (retry after %d s)", fault.Transient},
		{"HTTP::ServiceUnavailable", "503 Service Unavailable from local AI after %d ms", fault.Transient},
		{"Errno::ECONNREFUSED", "Failed to open TCP connection to 127.0.0.1:%d (Connection refused)", fault.Transient},
		{"AuthenticationError", "login_required: session expired for account %d", fault.Authentication},
		{"NoMethodError", "undefined method `media_id' for nil:NilClass (item %d)", fault.Runtime},
		{"ActiveRecord::RecordNotFound", "Couldn't find Profile with 'id'=%d", fault.Runtime},
		{"JSON::ParserError", "unexpected token at 'html' (byte %d)", fault.Runtime},
		{"Timeout::Error", "execution expired after %d s", fault.Transient},
		{"SocketError", "getaddrinfo: Temporary failure in name resolution (%d)", fault.Transient},
	}
	benchBacktrace = strings.Repeat("app/jobs/application_job.rb:42:in `perform'\n", 5)
)

// benchFailure makes failure id the way a real system produces them: each
// job class runs on one queue and fails with a few errors of its own, the
// error decides the kind, and failures arrive in time order.
func benchFailure(r *rand.Rand, id int64) *Failure {
	c := min(r.IntN(len(benchClasses)), r.IntN(len(benchClasses))) // popular classes fail more
	e := benchErrors[(c*3+min(r.IntN(3), r.IntN(3)))%len(benchErrors)]
	f := &Failure{
		ID:           id,
		JobID:        uint64(id * 3),
		Class:        benchClasses[c],
		Queue:        benchQueues[c%len(benchQueues)],
		Kind:         e.kind,
		Retryable:    e.kind == fault.Transient,
		ErrorClass:   e.class,
		ErrorMessage: fmt.Sprintf(e.msg, r.IntN(60_000)),
		Backtrace:    benchBacktrace,
		Attempt:      r.IntN(6),
		OccurredAt:   benchNow.Add(-30 * 24 * time.Hour).Add(time.Duration(id) * (30 * 24 * time.Hour / benchRows)),
		Fingerprint:  fmt.Sprintf("%016x", c*10+(c*3)%len(benchErrors)),
		Args:         []byte(fmt.Sprintf(`[{"account_id":%d,"cursor":"QVFE%08x","pages":%d}]`, r.IntN(2000)+1, r.Uint32(), r.IntN(20))),
		Retry:        RetryState{Status: RetryNone},
	}
	if r.IntN(10) != 0 {
		f.AccountID = int64(r.IntN(2000) + 1)
	}
	if r.IntN(3) == 0 {
		f.ProfileID = int64(r.IntN(200_000) + 1)
	}
	switch x := r.IntN(100); {
	case f.Kind == fault.Authentication && x < 30:
		f.Retry = RetryState{Status: RetryRefused, Reason: "authentication failures are not retried"}
	case x < 3:
		f.Retry = RetryState{Status: RetryQueued, Attempts: 1}
	case x < 4:
		f.Retry = RetryState{Status: RetrySucceeded, Attempts: 1}
	}
	return f
}

// BenchmarkFindFailures1M reports the cost of representative failure-table
// queries at a million rows: first pages with their totals, deep pages,
// searches, and counts. Run with -bench FindFailures1M -benchtime 20x.
func BenchmarkFindFailures1M(b *testing.B) {
	db := benchDB(b)
	day := benchNow.Add(-24 * time.Hour)
	find := func(ff FailureFilter) func(b *testing.B) {
		return func(b *testing.B) {
			var total int
			for b.Loop() {
				got, n, err := db.FindFailures(b.Context(), ff)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) == 0 && n > 0 {
					b.Fatal("empty page with a total")
				}
				total = n
			}
			b.ReportMetric(float64(total), "total")
		}
	}
	count := func(ff FailureFilter) func(b *testing.B) {
		return func(b *testing.B) {
			var total int
			for b.Loop() {
				n, _, err := db.CountFailures(b.Context(), ff)
				if err != nil {
					b.Fatal(err)
				}
				total = n
			}
			b.ReportMetric(float64(total), "total")
		}
	}
	eq := func(f Field, v any) Cond { return Cond{Field: f, Op: OpEq, Value: v} }
	newest := []SortKey{{Field: FieldOccurredAt, Desc: true}}

	b.Run("page/kind=transient/sort=occurred_at", find(FailureFilter{Conds: []Cond{eq(FieldKind, "transient")}, Sort: newest, Limit: 50}))
	b.Run("page/unfiltered", find(FailureFilter{Limit: 50}))
	b.Run("page/kind+queue", find(FailureFilter{Conds: []Cond{eq(FieldKind, "transient"), eq(FieldQueue, "sync")}, Limit: 50}))
	b.Run("page/class_like", find(FailureFilter{Conds: []Cond{{Field: FieldClass, Op: OpLike, Value: "ProfileRefresh"}}, Limit: 50}))
	b.Run("page/kind_in/sort=class", find(FailureFilter{Conds: []Cond{{Field: FieldKind, Op: OpIn, Value: []any{"transient", "runtime"}}},
		Sort: []SortKey{{Field: FieldClass}}, Limit: 50}))
	b.Run("page/account", find(FailureFilter{Conds: []Cond{eq(FieldAccountID, 42)}, Limit: 50}))
	b.Run("page/last_24h+kind=runtime", find(FailureFilter{Conds: []Cond{{Field: FieldOccurredAt, Op: OpGe, Value: day}, eq(FieldKind, "runtime")}, Limit: 50}))
	b.Run("page/last_24h+queue+kind", find(FailureFilter{Conds: []Cond{{Field: FieldOccurredAt, Op: OpGe, Value: day},
		eq(FieldQueue, "profiles"), eq(FieldKind, "transient")}, Limit: 50}))
	b.Run("page/sort=attempt", find(FailureFilter{Sort: []SortKey{{Field: FieldAttempt, Desc: true}}, Limit: 50}))
	fourKeys := []SortKey{{Field: FieldClass}, {Field: FieldQueue, Desc: true}, {Field: FieldKind}, {Field: FieldAttempt}}
	b.Run("page/sort=4keys", find(FailureFilter{Sort: fourKeys, Limit: 50}))
	b.Run("page/sort=4keys/offset=24000/size=1000", find(FailureFilter{Sort: fourKeys, Offset: 24_000, Limit: 1000}))
	b.Run("page/sort=4keys/offset=max/size=1000", find(FailureFilter{Sort: fourKeys, Offset: MaxFailureOffset, Limit: 1000}))
	b.Run("page/offset=10000", find(FailureFilter{Conds: []Cond{eq(FieldKind, "transient")}, Offset: 10_000, Limit: 50}))
	b.Run("search/q=common", find(FailureFilter{Q: "timeout", Limit: 50}))
	b.Run("search/q=rare", find(FailureFilter{Q: "QVFE0000", Limit: 50}))
	b.Run("search/q+kind", find(FailureFilter{Q: "refused", Conds: []Cond{eq(FieldKind, "transient")}, Limit: 50}))
	b.Run("search/error_message_like", find(FailureFilter{Conds: []Cond{{Field: FieldErrorMessage, Op: OpLike, Value: "name resolution"}}, Limit: 50}))
	b.Run("count/kind=transient", count(FailureFilter{Conds: []Cond{eq(FieldKind, "transient")}}))
	b.Run("count/unfiltered", count(FailureFilter{}))
	b.Run("count/kind+queue+class_like", count(FailureFilter{Conds: []Cond{eq(FieldKind, "transient"), eq(FieldQueue, "profiles"),
		{Field: FieldClass, Op: OpLike, Value: "Sync"}}}))
	b.Run("count/last_24h", count(FailureFilter{Conds: []Cond{{Field: FieldOccurredAt, Op: OpGe, Value: day}}}))
	b.Run("count/last_7d+kind", count(FailureFilter{Conds: []Cond{{Field: FieldOccurredAt, Op: OpGe, Value: benchNow.Add(-7*24*time.Hour + 1234)}, eq(FieldKind, "transient")}}))
	b.Run("count/last_30d+queue+kind", count(FailureFilter{Conds: []Cond{{Field: FieldOccurredAt, Op: OpGe, Value: benchNow.Add(-30*24*time.Hour + 1234)},
		eq(FieldQueue, "profiles"), eq(FieldKind, "transient")}}))
	b.Run("count/account+kind", count(FailureFilter{Conds: []Cond{eq(FieldAccountID, 42), eq(FieldKind, "runtime")}}))
	b.Run("count/account", count(FailureFilter{Conds: []Cond{eq(FieldAccountID, 42)}}))
	b.Run("count/retryable+attempt", count(FailureFilter{Conds: []Cond{eq(FieldRetryable, true), {Field: FieldAttempt, Op: OpGe, Value: 3}}}))
}
