package data

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/benbjohnson/litestream"
)

func TestCheckReplicaURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		url  string
		want string // "" accepted, else in the error
	}{
		{"file:///var/backup/conveyor", ""},
		{"file://localhost/var/backup/conveyor", ""},
		{"file:///var/backup/replica?x=1#f", "a query (?x=1) and a fragment (#f)"},
		{"file:///var/backup/replica?", "a query"},
		{"file:///var/backup/replica#f", "a fragment (#f)"},
		{"file://someone@/var/backup/replica", "no user"},
		{"file://relative/dir", "absolute path"},
		{"s3://bucket/prefix", ""},
		{"s3://bucket/prefix?region=eu-west-1&endpoint=127.0.0.1:9000&forcePathStyle=true&skip-verify=true", ""},
		{"s3://bucket/prefix?regoin=eu-west-1", `unknown s3 query key "regoin"`},
		{"s3://bucket/prefix#f", "a fragment"},
		{"s3://bucket/prefix?region=%zz", "does not parse"},
		{"gs://bucket/x", ""}, // not linked: Replicate says so (ErrUnsupportedReplica)
		{"replica-dir", "scheme"},
	} {
		err := CheckReplicaURL(c.url)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v, want accepted", c.url, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalid)):
			t.Errorf("%s: %v, want an invalid-URL error saying %q", c.url, err, c.want)
		}
	}
}

// FuzzCheckReplicaURL: whatever CheckReplicaURL accepts as a file replica,
// litestream reads as the absolute directory the URL's path names, with
// nothing dropped.
func FuzzCheckReplicaURL(f *testing.F) {
	for _, s := range []string{"file:///var/backup", "file:///r?x=1#f", "file://h/x", "s3://b/p?region=x", "s3://arn:aws:s3:us-east-1:1:accesspoint/ap/p", "file:///a%20b", "file:///a/../b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if CheckReplicaURL(s) != nil {
			return
		}
		scheme, _, p, err := litestream.ParseReplicaURL(s)
		if err != nil {
			t.Fatalf("accepted %q, which litestream does not parse: %v", s, err)
		}
		if strings.ContainsAny(s, "#") {
			t.Fatalf("accepted %q with a fragment", s)
		}
		if scheme == "file" && (strings.Contains(s, "?") || !filepath.IsAbs(filepath.FromSlash(p))) {
			t.Fatalf("accepted file URL %q: path %q", s, p)
		}
	})
}
