package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/benbjohnson/litestream"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadLitestreamConfigFiles(t *testing.T) {
	t.Setenv("CONVEYOR_DATA", "/srv/conveyor")
	cfg, err := LoadLitestreamConfig(filepath.Join("testdata", "litestream-file.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DBPath != "/srv/conveyor/conveyor.db" || cfg.ReplicaURL != "file:///srv/conveyor/replica" {
		t.Fatalf("file config = %+v", cfg)
	}

	t.Setenv("AWS_ACCESS_KEY_ID", "AKIA123")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
	cfg, err = LoadLitestreamConfig(filepath.Join("testdata", "litestream-s3.yml"))
	if err != nil {
		t.Fatal(err)
	}
	want := "s3://conveyor-backups/prod/conveyor?endpoint=http%3A%2F%2F127.0.0.1%3A9000&forcePathStyle=true&region=eu-central-1"
	if cfg.ReplicaURL != want || cfg.AccessKeyID != "AKIA123" || cfg.SecretAccessKey != "s3cr3t" {
		t.Fatalf("s3 config = %+v\nwant url %s", cfg, want)
	}
	// The URL means the same to litestream's parser.
	scheme, host, path, err := litestream.ParseReplicaURL(cfg.ReplicaURL)
	if err != nil || scheme != "s3" || host != "conveyor-backups" || path != "prod/conveyor" {
		t.Fatalf("litestream parses %q as %s %s %s %v", cfg.ReplicaURL, scheme, host, path, err)
	}

	if _, err := LoadLitestreamConfig(filepath.Join("testdata", "missing.yml")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestParseLitestreamConfig(t *testing.T) {
	t.Parallel()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	vars := env(map[string]string{"DIR": "/data", "BUCKET": "b1"})
	for _, tc := range []struct {
		name, yml, db, url, err string
	}{
		{"url", "dbs:\n  - path: /data/c.db\n    replica:\n      url: file:///backup/c\n", "/data/c.db", "file:///backup/c", ""},
		{"s3 url kept", "dbs:\n  - path: /data/c.db\n    replica:\n      url: s3://bucket/prefix?region=us-east-1\n", "/data/c.db", "s3://bucket/prefix?region=us-east-1", ""},
		{"default type is file", "dbs:\n  - path: $DIR/c.db\n    replica:\n      path: ${DIR}/rep\n", "/data/c.db", "file:///data/rep", ""},
		{"relative paths", "dbs:\n  - path: c.db\n    replica:\n      path: rep\n", filepath.Join(wd, "c.db"), "file://" + filepath.Join(wd, "rep"), ""},
		{"deprecated replicas", "dbs:\n  - path: /c.db\n    replicas:\n      - url: file:///r\n", "/c.db", "file:///r", ""},
		{"s3 minimal", "dbs:\n  - path: /c.db\n    replica:\n      type: s3\n      bucket: ${BUCKET}\n", "/c.db", "s3://b1/", ""},
		{"unknown keys", "logging:\n  level: debug\nsnapshot:\n  interval: 1h\ndbs:\n  - path: /c.db\n    meta-path: /x\n    replica:\n      url: file:///r\n      retention: 24h\n", "/c.db", "file:///r", ""},
		{"no dbs", "addr: :9090\n", "", "", "dbs: want exactly one database, found 0"},
		{"two dbs", "dbs:\n  - path: /a.db\n    replica: {url: 'file:///a'}\n  - path: /b.db\n    replica: {url: 'file:///b'}\n", "", "", "found 2"},
		{"no path", "dbs:\n  - replica: {url: 'file:///a'}\n", "", "", "dbs[0].path: required"},
		{"no replica", "dbs:\n  - path: /a.db\n", "", "", "dbs[0].replica: required"},
		{"both", "dbs:\n  - path: /a.db\n    replica: {url: 'file:///a'}\n    replicas: [{url: 'file:///b'}]\n", "", "", "not both"},
		{"two replicas", "dbs:\n  - path: /a.db\n    replicas: [{url: 'file:///a'}, {url: 'file:///b'}]\n", "", "", "found 2"},
		{"url and path", "dbs:\n  - path: /a.db\n    replica: {url: 'file:///a', path: /b}\n", "", "", "dbs[0].replica.path: cannot set both"},
		{"url not a url", "dbs:\n  - path: /a.db\n    replica: {url: /a}\n", "", "", "dbs[0].replica.url"},
		{"type mismatch", "dbs:\n  - path: /a.db\n    replica: {type: s3, url: 'file:///a'}\n", "", "", "dbs[0].replica.type"},
		{"path is a url", "dbs:\n  - path: /a.db\n    replica: {path: 's3://x/y'}\n", "", "", "use the url key"},
		{"s3 without bucket", "dbs:\n  - path: /a.db\n    replica: {type: s3, path: x}\n", "", "", "dbs[0].replica.bucket: required"},
		{"unsupported type", "dbs:\n  - path: /a.db\n    replica: {type: gcs, path: x}\n", "", "", "not supported"},
		{"not yaml", "dbs: [", "", "", "parse"},
		{"path litestream would misread", "dbs:\n  - path: /a.db\n    replica: {path: '/back up/%41'}\n", "", "", "cannot be a file:// replica"},
		{"wrong shape", "dbs: {path: /a.db}\n", "", "", "parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseLitestreamConfig([]byte(tc.yml), vars)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || cfg.DBPath != tc.db || cfg.ReplicaURL != tc.url {
				t.Fatalf("= %+v, %v; want %s %s", cfg, err, tc.db, tc.url)
			}
		})
	}
}

func FuzzParseLitestreamConfig(f *testing.F) {
	for _, name := range []string{"litestream-file.yml", "litestream-s3.yml"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("dbs:\n  - path: /a.db\n    replicas: [{url: 'file:///a'}]\n"))
	f.Add([]byte("dbs:\n  - path: ~/a.db\n    replica: {type: s3, bucket: b, path: p, endpoint: 'http://h:1', force-path-style: false, skip-verify: true}\n"))
	f.Add([]byte("dbs: [{path: $X, replica: {url: '${Y}'}}]"))
	f.Add([]byte("a: &a [*a, *a]\ndbs: *a"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := parseLitestreamConfig(b, env(map[string]string{"X": "/x.db", "Y": "file:///y"}))
		if err != nil {
			return
		}
		if !filepath.IsAbs(cfg.DBPath) {
			t.Fatalf("DBPath %q is not absolute", cfg.DBPath)
		}
		scheme, _, _, err := litestream.ParseReplicaURL(cfg.ReplicaURL)
		if err != nil || scheme == "" {
			t.Fatalf("ReplicaURL %q does not parse: %v", cfg.ReplicaURL, err)
		}
		if scheme == "file" {
			if _, err := checkReplicaURL(cfg.ReplicaURL); err != nil {
				t.Fatalf("file ReplicaURL %q is refused by Replicate: %v", cfg.ReplicaURL, err)
			}
		}
	})
}
