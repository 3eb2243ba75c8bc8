package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// listTree lists every path under root (relative), for "nothing was left".
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err == nil {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// TestFailedRestoreLeavesNothing: a restore that fails — nothing in the
// replica, a damaged queue snapshot, a replica URL with parts restore does
// not understand — leaves the file system as it found it: no data
// directory (nor the parents it created), and in a directory that existed,
// nothing of its own.
func TestFailedRestoreLeavesNothing(t *testing.T) {
	t.Parallel()
	env := func(string) string { return "" }
	root := t.TempDir()
	empty := filepath.Join(root, "empty-replica")
	damaged := filepath.Join(root, "damaged-replica")
	for _, d := range []string{empty, filepath.Join(damaged, "snapshots")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(damaged, "snapshots", queueSnapshotName), []byte("not a bolt file"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, replica, want string
	}{
		{"empty replica", "file://" + empty, "holds no backup"},
		{"damaged queue snapshot", "file://" + damaged, "damaged"},
		{"query and fragment", "file://" + empty + "?x=1#f", "query"},
		{"fragment", "file://" + empty + "#f", "fragment"},
		{"user", "file://someone@" + empty, "user"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			before := listTree(t, base)
			dir := filepath.Join(base, "new", "data")
			var out bytes.Buffer
			err := run(t.Context(), []string{"restore", "--data", dir, "--replica", c.replica}, env, &out, &out)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("restore: %v, want an error saying %q", err, c.want)
			}
			if after := listTree(t, base); !slices.Equal(before, after) {
				t.Errorf("left behind: %q (was %q)", after, before)
			}

			// A directory that existed keeps what it held, and only that.
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600); err != nil {
				t.Fatal(err)
			}
			before = listTree(t, base)
			err = run(t.Context(), []string{"restore", "--data", dir, "--replica", c.replica}, env, &out, &out)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("restore into an existing directory: %v, want an error saying %q", err, c.want)
			}
			if after := listTree(t, base); !slices.Equal(before, after) {
				t.Errorf("existing directory: left behind %q (was %q)", after, before)
			}
		})
	}
}
