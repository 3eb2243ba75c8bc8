package localai

import (
	"os"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	self, err := readProcStat(os.Getpid())
	if err != nil || self.pid != os.Getpid() || !self.alive() || self.startTicks == 0 || self.pgrp <= 0 {
		t.Fatalf("own stat = %+v, %v", self, err)
	}
	line := "4242 (we (ird) name) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615"
	st, err := parseProcStat([]byte(line))
	if err != nil || st.pid != 4242 || st.state != 'S' || st.pgrp != 4240 || st.startTicks != 987654 {
		t.Errorf("parse = %+v, %v", st, err)
	}
	for _, bad := range []string{"", "4242", "4242 (x)", "x (y) S 1 2", "4242 (x) S 1 notanumber 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q) accepted", bad)
		}
	}
}

func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte("4242 (we (ird) name) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000"))
	f.Add([]byte("1 () Z 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"))
	f.Add([]byte(")("))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseProcStat(data)
		if err == nil && st.pid <= 0 {
			t.Fatalf("accepted pid %d", st.pid)
		}
	})
}
