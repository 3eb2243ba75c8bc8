package jobs

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The environment variables of the fan-out (the seed's names). Each
// orchestrator has its own overrides, <PREFIX>_ACCOUNT_ENQUEUE_STAGGER_SECONDS,
// <PREFIX>_ACCOUNT_ENQUEUE_JITTER_SECONDS and <PREFIX>_ACCOUNT_BATCH_SIZE,
// with the prefixes of Orchestrators.
const (
	EnvStagger   = "SCHEDULED_ACCOUNT_ENQUEUE_STAGGER_SECONDS"
	EnvJitter    = "SCHEDULED_ACCOUNT_ENQUEUE_JITTER_SECONDS"
	EnvBatchSize = "SCHEDULED_ACCOUNT_BATCH_SIZE"
)

// The environment variables of the continuous feed capture and the purge.
const (
	EnvFeedSyncInterval = "FEED_SYNC_INTERVAL"
	EnvFeedSyncJitter   = "FEED_SYNC_JITTER_SECONDS"
	EnvMediaRetention   = "POST_MEDIA_RETENTION"
)

// Defaults of the settings.
const (
	DefaultBatchSize        = 100
	DefaultStagger          = 4 * time.Second
	DefaultJitter           = 2 * time.Second
	DefaultFeedSyncInterval = 2 * time.Hour
	// DemoFeedSyncInterval is the demo's interval when FEED_SYNC_INTERVAL
	// is not set.
	DemoFeedSyncInterval = 2 * time.Minute
	// DefaultFeedPageDelay is CaptureHomeFeedJob's delay_seconds when its
	// args do not say.
	DefaultFeedPageDelay = 3 * time.Second
	// DefaultFeedMaxPages is how many pages one capture reads at most.
	DefaultFeedMaxPages   = 5
	DefaultMediaRetention = 30 * 24 * time.Hour
	// DefaultFollowPagesPerRun is how many pages of each follow list one
	// run of SyncFollowGraphJob reads; the next run continues from the
	// stored cursor.
	DefaultFollowPagesPerRun = 20
	// DefaultRecordRetention is how long outside calls and account actions
	// are kept.
	DefaultRecordRetention = 7 * 24 * time.Hour
	// MaxBatchSize bounds a batch (one enqueue of that many jobs).
	MaxBatchSize = 10_000
	// maxSeconds bounds stagger and jitter settings (a day).
	maxSeconds = 86_400
)

// Batching is one orchestrator's fan-out arithmetic: accounts in
// ascending-id batches of BatchSize; the k-th account of the fan-out is due
// at the fan-out's start + k × Stagger + Jitter(class, account id).
type Batching struct {
	BatchSize int
	Stagger   time.Duration // whole seconds
	Jitter    time.Duration // whole seconds: the most the jitter adds
}

// DefaultBatching is the seed's: batches of 100, 4 s apart, up to 2 s of
// jitter.
var DefaultBatching = Batching{BatchSize: DefaultBatchSize, Stagger: DefaultStagger, Jitter: DefaultJitter}

// Settings are the catalog's settings, from the environment
// (SettingsFromEnv) over the defaults.
type Settings struct {
	// Batching is each orchestrator's, by orchestrator class.
	Batching map[string]Batching
	// FeedSyncInterval is how often an account's home feed is captured;
	// FeedSyncJitter the most the account-level jitter adds to it.
	FeedSyncInterval time.Duration
	FeedSyncJitter   time.Duration
	// FeedMaxPages bounds one capture.
	FeedMaxPages int
	// MediaRetention is how long stored post media is kept.
	MediaRetention time.Duration
	// FollowPagesPerRun bounds one follow-graph run per list.
	FollowPagesPerRun int
	// RecordRetention is how long outside calls and account actions are
	// kept.
	RecordRetention time.Duration
}

// DefaultSettings are the defaults (the seed's).
func DefaultSettings() Settings {
	s := Settings{
		Batching:          map[string]Batching{},
		FeedSyncInterval:  DefaultFeedSyncInterval,
		FeedSyncJitter:    DefaultFeedSyncInterval / 10,
		FeedMaxPages:      DefaultFeedMaxPages,
		MediaRetention:    DefaultMediaRetention,
		FollowPagesPerRun: DefaultFollowPagesPerRun,
		RecordRetention:   DefaultRecordRetention,
	}
	for _, o := range Orchestrators() {
		s.Batching[o.Class] = DefaultBatching
	}
	return s
}

// SettingsFromEnv reads the settings from the environment over the
// defaults; demo makes the feed interval DemoFeedSyncInterval unless
// FEED_SYNC_INTERVAL says otherwise. A bad value is an error naming the
// variable, so that it stops start-up.
func SettingsFromEnv(getenv func(string) string, demo bool) (Settings, error) {
	s := DefaultSettings()
	if demo {
		s.FeedSyncInterval = DemoFeedSyncInterval
		s.FeedSyncJitter = DemoFeedSyncInterval / 10
	}
	base := DefaultBatching
	var err error
	if base, err = batchingFromEnv(getenv, base, EnvBatchSize, EnvStagger, EnvJitter); err != nil {
		return s, err
	}
	for _, o := range Orchestrators() {
		p := o.Prefix + "_ACCOUNT_"
		b, err := batchingFromEnv(getenv, base, p+"BATCH_SIZE", p+"ENQUEUE_STAGGER_SECONDS", p+"ENQUEUE_JITTER_SECONDS")
		if err != nil {
			return s, err
		}
		s.Batching[o.Class] = b
	}
	if v := strings.TrimSpace(getenv(EnvFeedSyncInterval)); v != "" {
		d, err := parseDuration(v)
		if err != nil || d < time.Second {
			return s, fmt.Errorf("%s=%q: want a duration of at least 1s, e.g. 2h, 90m or 7200 (seconds)", EnvFeedSyncInterval, v)
		}
		s.FeedSyncInterval, s.FeedSyncJitter = d, d/10
	}
	if v := strings.TrimSpace(getenv(EnvFeedSyncJitter)); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxSeconds {
			return s, fmt.Errorf("%s=%q: want whole seconds from 0 to %d", EnvFeedSyncJitter, v, maxSeconds)
		}
		s.FeedSyncJitter = time.Duration(n) * time.Second
	}
	if v := strings.TrimSpace(getenv(EnvMediaRetention)); v != "" {
		d, err := parseDuration(v)
		if err != nil || d <= 0 {
			return s, fmt.Errorf("%s=%q: want a positive duration, e.g. 30d, 720h or 2592000 (seconds)", EnvMediaRetention, v)
		}
		s.MediaRetention = d
	}
	return s, nil
}

// batchingFromEnv applies one set of variables over base.
func batchingFromEnv(getenv func(string) string, base Batching, size, stagger, jitter string) (Batching, error) {
	if v := strings.TrimSpace(getenv(size)); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxBatchSize {
			return base, fmt.Errorf("%s=%q: want a whole number of accounts from 1 to %d", size, v, MaxBatchSize)
		}
		base.BatchSize = n
	}
	for _, sv := range []struct {
		name string
		into *time.Duration
	}{{stagger, &base.Stagger}, {jitter, &base.Jitter}} {
		if v := strings.TrimSpace(getenv(sv.name)); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > maxSeconds {
				return base, fmt.Errorf("%s=%q: want whole seconds from 0 to %d", sv.name, v, maxSeconds)
			}
			*sv.into = time.Duration(n) * time.Second
		}
	}
	return base, nil
}

// parseDuration reads a Go duration ("2h", "90m"), whole days ("30d") or
// a number of seconds ("7200").
func parseDuration(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 || n > int64(10*365*24*3600) {
			return 0, fmt.Errorf("out of range")
		}
		return time.Duration(n) * time.Second, nil
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 3650 {
			return 0, fmt.Errorf("bad days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration")
	}
	return d, nil
}
