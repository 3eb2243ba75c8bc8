package data

import (
	"slices"
	"testing"
)

// Every operator offered to clients is one the store accepts on that
// field, and every field offers something: the API's whitelist cannot drift
// from the store's.
func TestOfferedOpsAreAccepted(t *testing.T) {
	t.Parallel()
	for _, f := range FailureFields() {
		offered := f.Offered()
		if len(offered) == 0 {
			t.Errorf("%s offers no operator", f)
		}
		for _, op := range offered {
			if !slices.Contains(failureFields[f].typ.ops(), op) {
				t.Errorf("%s offers %s, which the store refuses", f, op)
			}
		}
	}
	if ops := Field("nope").Offered(); ops != nil {
		t.Errorf("an unknown field offers %v", ops)
	}
	// Offered hands out a copy: a caller cannot widen the whitelist.
	FieldKind.Offered()[0] = OpLike
	if FieldKind.Offered()[0] == OpLike {
		t.Error("Offered returned the whitelist itself")
	}
}
