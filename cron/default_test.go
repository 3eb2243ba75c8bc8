package cron

import (
	"bytes"
	"testing"
	"time"
)

func TestDefaultSchedule(t *testing.T) {
	t.Parallel()
	entries, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	// The seed's recurring jobs and the queue of each in the seed's topology.
	want := map[string]string{
		"EnqueueContinuousAccountProcessingJob":          "sync",
		"CheckAiMicroserviceHealthJob":                   "maintenance",
		"CheckQueueHealthJob":                            "maintenance",
		"RetryFailedBackgroundJobsJob":                   "maintenance",
		"EnqueueStoryAutoRepliesForAllAccountsJob":       "engagements",
		"EnqueueFeedAutoEngagementForAllAccountsJob":     "engagements",
		"EnqueueRecentProfilePostScansForAllAccountsJob": "profiles",
		"EnqueueFollowGraphSyncForAllAccountsJob":        "sync",
		"EnqueueAvatarSyncForAllAccountsJob":             "avatars",
		"EnqueueProfileRefreshForAllAccountsJob":         "profiles",
		"PurgeExpiredInstagramPostMediaJob":              "maintenance",
	}
	if len(entries) != len(want) {
		t.Errorf("%d entries, want %d", len(entries), len(want))
	}
	day := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, e := range entries {
		q, ok := want[e.Class]
		if !ok {
			t.Errorf("entry %q: unexpected class %q", e.Name, e.Class)
			continue
		}
		delete(want, e.Class)
		if e.Queue != q {
			t.Errorf("entry %q: queue %q, want %q", e.Name, e.Queue, q)
		}
		if e.Description == "" || !e.Enabled || e.Zone != time.UTC {
			t.Errorf("entry %q: %+v", e.Name, e)
		}
		// Health checks every minute, continuous processing every 5
		// minutes, retries every 10; the rest between hourly and daily.
		ticks := e.NextN(day.Add(-time.Nanosecond), 25)
		every := map[string]time.Duration{
			"CheckAiMicroserviceHealthJob":          time.Minute,
			"CheckQueueHealthJob":                   time.Minute,
			"EnqueueContinuousAccountProcessingJob": 5 * time.Minute,
			"RetryFailedBackgroundJobsJob":          10 * time.Minute,
		}[e.Class]
		if every > 0 {
			for i := 1; i < len(ticks); i++ {
				if gap := ticks[i].Sub(ticks[i-1]); gap != every {
					t.Errorf("entry %q (%s): ticks %s apart, want %s", e.Name, e.Line, gap, every)
				}
			}
			continue
		}
		perDay := 0
		for _, tk := range ticks {
			if tk.Before(day.AddDate(0, 0, 1)) {
				perDay++
			}
		}
		if perDay < 1 || perDay > 24 || (e.Class == "PurgeExpiredInstagramPostMediaJob" && perDay != 1) {
			t.Errorf("entry %q (%s): %d ticks a day", e.Name, e.Line, perDay)
		}
	}
	for class := range want {
		t.Errorf("no entry for %s", class)
	}
	if b := DefaultSchedule(); &b[0] == &defaultSchedule[0] || !bytes.Equal(b, defaultSchedule) {
		t.Error("DefaultSchedule must return a copy of the embedded file")
	}
}
