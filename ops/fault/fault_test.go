package fault

import (
	"errors"
	"fmt"
	"testing"
)

func TestRetryable(t *testing.T) {
	t.Parallel()
	for k, want := range map[Kind]bool{Authentication: false, Transient: true, Runtime: true} {
		if got := k.Retryable(); got != want {
			t.Errorf("%q.Retryable() = %v, want %v", k, got, want)
		}
	}
}

func TestParseKind(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"authentication", "transient", "runtime", " RUNTIME "} {
		if _, err := Parse(s); err != nil {
			t.Errorf("Parse(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "auth", "fatal"} {
		if _, err := Parse(s); !errors.Is(err, ErrUnknownKind) {
			t.Errorf("Parse(%q) error = %v, want ErrUnknownKind", s, err)
		}
	}
}

func TestErrorMessageAndUnwrap(t *testing.T) {
	t.Parallel()
	inner := errors.New("token expired")
	e := Error{Kind: Authentication, Err: inner}
	if e.Error() != "token expired" {
		t.Errorf("Error() = %q", e.Error())
	}
	if !errors.Is(e, inner) {
		t.Error("errors.Is does not see the wrapped error")
	}
	if got := (Error{Kind: Transient}).Error(); got != "transient" {
		t.Errorf("Error() without Err = %q", got)
	}
}

func TestValidIsExact(t *testing.T) {
	t.Parallel()
	for _, k := range Kinds() {
		if !k.Valid() {
			t.Errorf("%q is not valid", k)
		}
	}
	for _, k := range []Kind{"", "Transient", " runtime", "fatal"} {
		if k.Valid() {
			t.Errorf("%q is valid", k)
		}
	}
}

func TestErrorDeclaresItsKind(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want Kind
	}{{Error{Kind: Transient}, Transient}, {&Error{Kind: Authentication}, Authentication}} {
		var declared interface{ FailureKind() string }
		if !errors.As(fmt.Errorf("wrapped: %w", c.err), &declared) || declared.FailureKind() != string(c.want) {
			t.Errorf("%#v: FailureKind not found through a wrapper, or not %q", c.err, c.want)
		}
	}
}
