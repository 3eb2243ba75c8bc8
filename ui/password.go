package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Passwords are kept as argon2id hashes in the PHC string format that other
// tools read too:
//
//	$argon2id$v=19$m=65536,t=3,p=2$<salt, base64>$<key, base64>
//
// argon2id (RFC 9106) is memory-hard, so a stolen hash is expensive to
// guess on graphics cards, and it takes passwords of any length (bcrypt
// silently ignores everything past 72 bytes). The parameters travel in the
// string, so a hash made with other costs still verifies.

// Argon2id costs of HashPassword: RFC 9106's second recommended option
// (64 MiB, 3 passes), with 2 lanes for a small machine.
const (
	argonMemoryKiB = 64 * 1024
	argonTime      = 3
	argonThreads   = 2
	argonKeyLen    = 32
	argonSaltLen   = 16
	// Bounds a hash from the configuration may ask for, so that a typo
	// cannot make each login take minutes or all the memory.
	argonMaxMemoryKiB = 1024 * 1024
	argonMaxTime      = 16
)

// ErrBadPasswordHash is returned when a configured password hash is not an
// argon2id PHC string this server can verify.
var ErrBadPasswordHash = errors.New("not an argon2id hash ($argon2id$v=19$m=…,t=…,p=…$salt$key): make one with `conveyor passwd`")

// CheckPasswordHash returns why s is not a password hash Config.PasswordHash
// takes (ErrBadPasswordHash, with the part at fault), or nil: settings check
// it where they read it, so that the error names the key or variable.
func CheckPasswordHash(s string) error {
	_, err := parsePasswordHash(s)
	return err
}

// HashPassword returns the argon2id PHC string of password with a fresh salt.
func HashPassword(password string) (string, error) {
	return hashPassword(password, argonMemoryKiB, argonTime, argonThreads)
}

func hashPassword(password string, memKiB, time uint32, threads uint8) (string, error) {
	if password == "" {
		return "", errors.New("the password is empty")
	}
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, time, memKiB, threads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, memKiB, time, threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// passwordHash is a parsed argon2id PHC string.
type passwordHash struct {
	memKiB, time uint32
	threads      uint8
	salt, key    []byte
}

// parsePasswordHash reads a PHC string made by HashPassword (or any
// argon2id tool), within sane cost bounds.
func parsePasswordHash(s string) (passwordHash, error) {
	var h passwordHash
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return h, ErrBadPasswordHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return h, fmt.Errorf("%w (version %q; want v=%d)", ErrBadPasswordHash, parts[2], argon2.Version)
	}
	var m, t, p uint64
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || n != 3 ||
		fmt.Sprintf("m=%d,t=%d,p=%d", m, t, p) != parts[3] {
		return h, fmt.Errorf("%w (parameters %q)", ErrBadPasswordHash, parts[3])
	}
	if m < 8*p || m > argonMaxMemoryKiB || t < 1 || t > argonMaxTime || p < 1 || p > 255 {
		return h, fmt.Errorf("%w (parameters %q out of range: m up to %d KiB, t 1..%d, p 1..255)",
			ErrBadPasswordHash, parts[3], argonMaxMemoryKiB, argonMaxTime)
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return h, fmt.Errorf("%w (salt)", ErrBadPasswordHash)
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return h, fmt.Errorf("%w (key)", ErrBadPasswordHash)
	}
	return passwordHash{memKiB: uint32(m), time: uint32(t), threads: uint8(p), salt: salt, key: key}, nil
}

// verify reports, in constant time, whether password matches.
func (h passwordHash) verify(password string) bool {
	got := argon2.IDKey([]byte(password), h.salt, h.time, h.memKiB, h.threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(got, h.key) == 1
}
