package data

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/benbjohnson/litestream"
	"go.yaml.in/yaml/v3"
)

// LitestreamConfig is what Conveyor needs from a litestream.yml: the one
// database and where it is replicated.
type LitestreamConfig struct {
	// DBPath is the absolute path of the database.
	DBPath string
	// ReplicaURL is the replica as a URL: file:///abs/dir or
	// s3://bucket/prefix?region=…&endpoint=…&forcePathStyle=true.
	ReplicaURL string
	// AccessKeyID and SecretAccessKey are the s3 credentials when the file
	// sets them (access-key-id, secret-access-key); a client built from
	// ReplicaURL reads AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or
	// LITESTREAM_…) from the environment instead.
	AccessKeyID     string
	SecretAccessKey string
}

// maxConfigSize bounds the litestream.yml read.
const maxConfigSize = 1 << 20

// LoadLitestreamConfig reads the litestream.yml a stock litestream CLI
// reads and returns its single database and replica. It accepts the shapes
// the CLI accepts:
//
//	dbs:
//	  - path: /var/lib/conveyor/conveyor.db
//	    replica:
//	      url: file:///var/lib/conveyor/replica      # or s3://bucket/prefix?…
//	    # or: replica: {type: file, path: /var/lib/conveyor/replica}
//	    # or: replica: {type: s3, bucket: b, path: prefix, region: r, endpoint: e, force-path-style: true}
//	    # or the deprecated list: replicas: [{url: …}]
//
// Like the CLI it expands $VAR and ${VAR} (and $PID) from the environment
// before parsing, expands a leading ~/ to the home directory, makes relative
// paths absolute against the working directory, and ignores keys it does
// not need. The file must name exactly one database with exactly one
// replica; errors name the offending key.
func LoadLitestreamConfig(path string) (LitestreamConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return LitestreamConfig{}, fmt.Errorf("data: litestream config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return LitestreamConfig{}, fmt.Errorf("data: litestream config %s: %w", path, err)
	}
	if len(b) > maxConfigSize {
		return LitestreamConfig{}, fmt.Errorf("data: litestream config %s: larger than %d bytes", path, maxConfigSize)
	}
	cfg, err := parseLitestreamConfig(b, os.Getenv)
	if err != nil {
		return LitestreamConfig{}, fmt.Errorf("data: litestream config %s: %w", path, err)
	}
	return cfg, nil
}

type lsReplica struct {
	URL            string `yaml:"url"`
	Type           string `yaml:"type"`
	Path           string `yaml:"path"`
	Bucket         string `yaml:"bucket"`
	Region         string `yaml:"region"`
	Endpoint       string `yaml:"endpoint"`
	ForcePathStyle *bool  `yaml:"force-path-style"`
	SkipVerify     bool   `yaml:"skip-verify"`
	AccessKeyID    string `yaml:"access-key-id"`
	SecretKey      string `yaml:"secret-access-key"`
}

type lsFile struct {
	AccessKeyID string `yaml:"access-key-id"`
	SecretKey   string `yaml:"secret-access-key"`
	DBs         []struct {
		Path     string       `yaml:"path"`
		Replica  *lsReplica   `yaml:"replica"`
		Replicas []*lsReplica `yaml:"replicas"`
	} `yaml:"dbs"`
}

// parseLitestreamConfig parses a litestream.yml; getenv supplies $VARs.
func parseLitestreamConfig(b []byte, getenv func(string) string) (LitestreamConfig, error) {
	expanded := os.Expand(string(b), func(key string) string {
		if key == "PID" {
			return strconv.Itoa(os.Getpid())
		}
		return getenv(key)
	})
	var f lsFile
	if err := yaml.Unmarshal([]byte(expanded), &f); err != nil {
		return LitestreamConfig{}, fmt.Errorf("parse: %w", err)
	}
	if len(f.DBs) != 1 {
		return LitestreamConfig{}, fmt.Errorf("dbs: want exactly one database, found %d", len(f.DBs))
	}
	d := f.DBs[0]
	if strings.TrimSpace(d.Path) == "" {
		return LitestreamConfig{}, fmt.Errorf("dbs[0].path: required")
	}
	dbPath, err := expandPath(d.Path)
	if err != nil {
		return LitestreamConfig{}, fmt.Errorf("dbs[0].path: %w", err)
	}
	rc, key := d.Replica, "dbs[0].replica"
	switch {
	case d.Replica != nil && len(d.Replicas) > 0:
		return LitestreamConfig{}, fmt.Errorf("dbs[0]: set replica or replicas, not both")
	case d.Replica == nil && len(d.Replicas) == 0:
		return LitestreamConfig{}, fmt.Errorf("dbs[0].replica: required")
	case len(d.Replicas) > 1:
		return LitestreamConfig{}, fmt.Errorf("dbs[0].replicas: want exactly one replica, found %d", len(d.Replicas))
	case len(d.Replicas) == 1:
		rc, key = d.Replicas[0], "dbs[0].replicas[0]"
	}
	if rc == nil {
		return LitestreamConfig{}, fmt.Errorf("%s: empty", key)
	}
	cfg := LitestreamConfig{DBPath: dbPath, AccessKeyID: f.AccessKeyID, SecretAccessKey: f.SecretKey}
	if rc.AccessKeyID != "" {
		cfg.AccessKeyID = rc.AccessKeyID
	}
	if rc.SecretKey != "" {
		cfg.SecretAccessKey = rc.SecretKey
	}
	cfg.ReplicaURL, err = replicaURLOf(rc)
	if err != nil {
		return LitestreamConfig{}, fmt.Errorf("%s.%w", key, err)
	}
	return cfg, nil
}

// replicaURLOf turns one replica entry into a URL; errors start with the
// offending key.
func replicaURLOf(rc *lsReplica) (string, error) {
	typ := rc.Type
	if rc.URL != "" {
		if !litestream.IsURL(rc.URL) {
			return "", fmt.Errorf("url: %q is not a URL (scheme://…)", rc.URL)
		}
		scheme, _, p, err := litestream.ParseReplicaURL(rc.URL)
		if err != nil {
			return "", fmt.Errorf("url: %w", err)
		}
		if rc.Path != "" {
			return "", fmt.Errorf("path: cannot set both url and path")
		}
		if rc.Bucket != "" {
			return "", fmt.Errorf("bucket: cannot set both url and bucket")
		}
		if typ != "" && typ != scheme {
			return "", fmt.Errorf("type: %q does not match the url scheme %q", typ, scheme)
		}
		if scheme == "file" {
			abs, err := expandPath(p)
			if err != nil {
				return "", fmt.Errorf("url: %w", err)
			}
			u, err := fileURL(abs)
			if err != nil {
				return "", fmt.Errorf("url: %w", err)
			}
			return u, nil
		}
		return rc.URL, nil
	}
	switch typ {
	case "", "file":
		if strings.TrimSpace(rc.Path) == "" {
			return "", fmt.Errorf("path: required for a file replica")
		}
		if litestream.IsURL(rc.Path) {
			return "", fmt.Errorf("path: %q is a URL; use the url key", rc.Path)
		}
		abs, err := expandPath(rc.Path)
		if err != nil {
			return "", fmt.Errorf("path: %w", err)
		}
		u, err := fileURL(abs)
		if err != nil {
			return "", fmt.Errorf("path: %w", err)
		}
		return u, nil
	case "s3":
		if strings.TrimSpace(rc.Bucket) == "" {
			return "", fmt.Errorf("bucket: required for an s3 replica")
		}
		if strings.ContainsAny(rc.Bucket, "/?#@ ") {
			return "", fmt.Errorf("bucket: %q is not a bucket name", rc.Bucket)
		}
		u := url.URL{Scheme: "s3", Host: rc.Bucket, Path: "/" + strings.TrimPrefix(rc.Path, "/")}
		q := url.Values{}
		if rc.Region != "" {
			q.Set("region", rc.Region)
		}
		if rc.Endpoint != "" {
			q.Set("endpoint", rc.Endpoint)
		}
		if rc.ForcePathStyle != nil {
			q.Set("forcePathStyle", strconv.FormatBool(*rc.ForcePathStyle))
		}
		if rc.SkipVerify {
			q.Set("skipVerify", "true")
		}
		u.RawQuery = q.Encode()
		return u.String(), nil
	default:
		return "", fmt.Errorf("type: %q replicas are not supported (file or s3)", typ)
	}
}

// fileURL is the file:// URL of an absolute path. litestream reads a file
// URL back through url.Parse and re-escapes it, so a path with characters
// that need escaping (%, spaces, ?, #) would name another directory: such
// paths are refused.
func fileURL(abs string) (string, error) {
	u := "file://" + filepath.ToSlash(abs)
	_, _, p, err := litestream.ParseReplicaURL(u)
	if err != nil || filepath.FromSlash(p) != filepath.Clean(abs) {
		return "", fmt.Errorf("%q cannot be a file:// replica: litestream would read it as another path (avoid %%, spaces, ? and #)", abs)
	}
	return u, nil
}

// expandPath expands a leading ~ and makes p absolute, as the CLI does.
func expandPath(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~"+string(os.PathSeparator)) {
		u, err := user.Current()
		if err != nil {
			return "", err
		}
		if u.HomeDir == "" {
			return "", fmt.Errorf("cannot expand %s: no home directory", p)
		}
		p = filepath.Join(u.HomeDir, strings.TrimPrefix(p, "~"))
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("path contains a NUL byte")
	}
	return filepath.Abs(p)
}
