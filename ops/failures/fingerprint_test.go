package failures

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalizeMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"boom", "boom"},
		{"Couldn't find Account with 'id'=42", "Couldn't find Account with '?'=<n>"},
		{"can't open file", "can't open file"},
		{`key "alpha" missing`, `key "?" missing`},
		{`unquote "a \"b\" c" failed`, `unquote "?" failed`},
		{"run `ls -la` failed", "run `?` failed"},
		{"got “smart” quotes and ‘single’ ones", "got “?” quotes and ‘?’ ones"},
		{"unterminated 'quote here", "unterminated 'quote here"},
		{"timeout after 30s", "timeout after <n>s"},
		{"took 1.5s, retry in 12:30:01", "took <n>s, retry in <n>"},
		{"dial tcp 10.0.0.12:8080: connect: connection refused", "dial tcp <n>: connect: connection refused"},
		{"1,234 rows", "<n> rows"},
		{"job 3fa85f64-5717-4562-b3fc-2c963f66afa6 failed", "job <uuid> failed"},
		{"job 3FA85F64-5717-4562-B3FC-2C963F66AFA6 failed", "job <uuid> failed"},
		{"nil pointer at 0xc000123456", "nil pointer at <hex>"},
		{"commit deadbeef1 not found", "commit <hex> not found"},
		{"word deadbeef stays", "word deadbeef stays"},
		{"request 01HZX3K8M9QW7ERT5Y6U failed", "request <id> failed"},
		{"internationalization is long but has no digits", "internationalization is long but has no digits"},
		{"user bob.smith+x@example.co.uk not found", "user <email> not found"},
		{"GET https://api.example.com/v1/media?access_token=abc&cursor=9#frag: 500", "GET https://api.example.com/v<n>/media <n>"},
		{"  many\n\n spaces\t\there \r\n", "many spaces here"},
		{"nul\x00byte", "nul byte"},
		{"bad \xff utf-eight", "bad \uFFFD utf-eight"},
		{"account_id=123 user123", "account_id=<n> user<n>"},
	}
	for _, tt := range tests {
		if got := NormalizeMessage(tt.in); got != tt.want {
			t.Errorf("NormalizeMessage(%q)\n got  %q\n want %q", tt.in, got, tt.want)
		}
	}
}

func TestNormalizeMessageBounded(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é word ", 10000) // multi-byte runes across the cut
	got := NormalizeMessage(long)
	if len(got) > MaxMessageLen {
		t.Fatalf("len = %d, want <= %d", len(got), MaxMessageLen)
	}
	if !utf8.ValidString(got) {
		t.Fatalf("cut inside a character: %q", got[len(got)-8:])
	}
	if strings.HasSuffix(got, " ") {
		t.Fatal("trailing space after the cut")
	}
	if again := NormalizeMessage(got); again != got {
		t.Fatal("not idempotent after the cut")
	}
}

func TestFingerprintGroupsAlikeMessages(t *testing.T) {
	t.Parallel()
	same := []struct{ a, b string }{
		{"Couldn't find Account with 'id'=42", "Couldn't find Account with 'id'=1337"},
		{"timeout after 30s contacting https://x.test/api?token=abc", "timeout after 45s contacting https://x.test/api?token=def"},
		{"user bob@example.com not found", "user alice@example.org not found"},
		{"job 3fa85f64-5717-4562-b3fc-2c963f66afa6 failed", "job 9b2e4f1a-0000-4000-8000-000000000001 failed"},
		{"object at 0xc000123456 is nil", "object at 0xc0000abcde is nil"},
		{`profile "natgeo" is private`, `profile "nasa" is private`},
		{"dial tcp 10.0.0.1:443: connect: connection refused", "dial tcp 192.168.1.20:8443: connect: connection refused"},
		{"rate limited,\n  retry after 60 seconds", "rate limited, retry after 3600 seconds"},
	}
	for _, tt := range same {
		fa := Fingerprint("job", "transient", "CaptureHomeFeedJob", tt.a)
		fb := Fingerprint("job", "transient", "CaptureHomeFeedJob", tt.b)
		if fa != fb {
			t.Errorf("want one fingerprint for\n %q (%s)\n %q (%s)\n normalized %q vs %q",
				tt.a, fa, tt.b, fb, NormalizeMessage(tt.a), NormalizeMessage(tt.b))
		}
	}
}

func TestFingerprintSeparatesDifferentFailures(t *testing.T) {
	t.Parallel()
	base := [4]string{"job", "transient", "CaptureHomeFeedJob", "connection refused"}
	variants := [][4]string{
		base,
		{"queue_health", base[1], base[2], base[3]},
		{base[0], "runtime", base[2], base[3]},
		{base[0], "authentication", base[2], base[3]},
		{base[0], base[1], "SyncFollowGraphJob", base[3]},
		{base[0], base[1], base[2], "connection reset by peer"},
		// Moving text between parts must not collide.
		{"jobtransient", "", base[2], base[3]},
		{base[0], base[1] + "CaptureHomeFeedJob", "", base[3]},
	}
	seen := map[string][4]string{}
	for _, v := range variants {
		fp := Fingerprint(v[0], v[1], v[2], v[3])
		if len(fp) != 32 {
			t.Errorf("Fingerprint length %d, want 32 hex characters", len(fp))
		}
		if prev, dup := seen[fp]; dup {
			t.Errorf("%q and %q share fingerprint %s", prev, v, fp)
		}
		seen[fp] = v
	}
}

func TestFingerprintIsStable(t *testing.T) {
	t.Parallel()
	// A stored fingerprint must keep matching new failures across releases;
	// changing the rules means bumping fingerprintVersion on purpose.
	const want = "d2dafa425983c7bc2d08e203dba3b2d1"
	got := Fingerprint("job", "transient", "CaptureHomeFeedJob", "timeout after 30s")
	if got != want {
		t.Errorf("Fingerprint changed: got %s, want %s (bump fingerprintVersion if this is intended, then update this test)", got, want)
	}
	if got != Fingerprint("job", "transient", "CaptureHomeFeedJob", NormalizeMessage("timeout after 30s")) {
		t.Error("Fingerprint of a normalized message differs from the raw one")
	}
}

func FuzzNormalizeMessage(f *testing.F) {
	for _, s := range []string{
		"", "boom", "Couldn't find Account with 'id'=42", `key "a\"b" missing`,
		"https://h/p?q=1#f", "a@b.co", "3fa85f64-5717-4562-b3fc-2c963f66afa6", "0xdeadbeef",
		"01HZX3K8M9QW7ERT5Y6U", "  \t\n ", "'a''b'", "5'abc'", "“x” ‘y’", "\xff\xfe",
		"http://a/'x'?y", `"a\`, strings.Repeat("ab ", 300) + "'q'",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		got := NormalizeMessage(msg)
		if len(got) > MaxMessageLen {
			t.Fatalf("len %d > %d", len(got), MaxMessageLen)
		}
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8: %q", got)
		}
		if again := NormalizeMessage(got); again != got {
			t.Fatalf("not idempotent:\n in   %q\n once %q\n twice %q", msg, got, again)
		}
	})
}

func BenchmarkNormalizeMessage(b *testing.B) {
	long := strings.Repeat("Couldn't find Account 'x' with id=42 at https://h/p?q=1 0xdeadbeef1 ", 300)
	b.SetBytes(int64(len(long)))
	for b.Loop() {
		NormalizeMessage(long)
	}
}

func BenchmarkFingerprint(b *testing.B) {
	msg := `Instagram::AuthenticationRequired: session for account 48213 expired (request 01HZX3K8M9QW7ERT5Y6U, "natgeo") at https://i.instagram.com/api/v1/feed/timeline/?max_id=QVFE`
	for b.Loop() {
		Fingerprint("job", "authentication", "CaptureHomeFeedJob", msg)
	}
}
