package cron

import (
	"bytes"
	_ "embed"
)

//go:embed default_schedule.yml
var defaultSchedule []byte

// DefaultSchedule returns a copy of the default schedule file: the seed
// system's recurring jobs (health checks every minute, continuous
// processing every five minutes, failed-job retries every ten, account
// fan-outs hourly, syncs and the media purge nightly), in the format Parse
// reads.
func DefaultSchedule() []byte {
	return bytes.Clone(defaultSchedule)
}

// Default parses the default schedule.
func Default() ([]Entry, error) {
	return Parse(bytes.NewReader(defaultSchedule))
}
