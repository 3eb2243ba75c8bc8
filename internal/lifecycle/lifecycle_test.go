package lifecycle

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// recorder is a Service that appends what happens to it to a shared log.
func recorder(log *[]string, name string, startErr, stopErr error) Hooks {
	return Hooks{
		Name: name,
		OnStart: func(context.Context) error {
			*log = append(*log, "start "+name)
			return startErr
		},
		OnStop: func(context.Context) error {
			*log = append(*log, "stop "+name)
			return stopErr
		},
	}
}

func TestStackStartsInOrderAndStopsInReverse(t *testing.T) {
	t.Parallel()
	var log []string
	var s Stack
	s.Push(recorder(&log, "opened", nil, nil))
	if err := s.Start(t.Context(), recorder(&log, "a", nil, nil), recorder(&log, "b", nil, nil)); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{"start a", "start b", "stop b", "stop a", "stop opened"}
	if !slices.Equal(log, want) {
		t.Fatalf("log %q, want %q", log, want)
	}
	if err := s.Stop(t.Context()); err != nil || len(log) != len(want) {
		t.Fatalf("a second Stop did something: %v, %q", err, log)
	}
}

func TestStackStartErrorLeavesTheStartedOnesToStop(t *testing.T) {
	t.Parallel()
	var log []string
	var s Stack
	boom, stopErr := errors.New("boom"), errors.New("stop failed")
	err := s.Start(t.Context(), recorder(&log, "a", nil, stopErr), recorder(&log, "b", boom, nil), recorder(&log, "c", nil, nil))
	if !errors.Is(err, boom) {
		t.Fatalf("Start = %v, want boom", err)
	}
	if err := s.Stop(t.Context()); !errors.Is(err, stopErr) {
		t.Fatalf("Stop = %v, want a's error", err)
	}
	want := []string{"start a", "start b", "stop a"}
	if !slices.Equal(log, want) {
		t.Fatalf("log %q, want %q (b failed to start, c never started)", log, want)
	}
}

func TestLoopStopCancelsWithCauseAndWaits(t *testing.T) {
	t.Parallel()
	var l Loop
	if err := l.Stop(t.Context()); err != nil || l.Done() != nil {
		t.Fatalf("Stop before Go = %v", err)
	}
	var cause error
	returned := false
	if !l.Go(context.Background(), func(ctx context.Context) {
		<-ctx.Done()
		cause = context.Cause(ctx)
		returned = true
	}) {
		t.Fatal("Go refused the first run")
	}
	if l.Go(context.Background(), func(context.Context) { t.Error("second run ran") }) {
		t.Fatal("Go accepted a second run")
	}
	if err := l.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Stop returned after run did: what run wrote is visible (and -race
	// checks the happens-before).
	if !returned || !errors.Is(cause, ErrStopped) {
		t.Fatalf("returned %v, cause %v", returned, cause)
	}
	if err := l.Stop(t.Context()); err != nil {
		t.Fatalf("second Stop = %v", err)
	}
}

func TestLoopStopGivesUpWhenCtxEnds(t *testing.T) {
	t.Parallel()
	var l Loop
	release := make(chan struct{})
	l.Go(context.Background(), func(context.Context) { <-release })
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop = %v, want context.Canceled", err)
	}
	close(release)
	<-l.Done()
}

func TestLoopParentContextEnds(t *testing.T) {
	t.Parallel()
	var l Loop
	parent, cancel := context.WithCancel(context.Background())
	var cause error
	l.Go(parent, func(ctx context.Context) { <-ctx.Done(); cause = context.Cause(ctx) })
	cancel()
	<-l.Done()
	if !errors.Is(cause, context.Canceled) || errors.Is(cause, ErrStopped) {
		t.Fatalf("cause %v, want the parent's context.Canceled", cause)
	}
}
