package failures

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"io"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxMessageLen bounds the length in bytes of what [NormalizeMessage]
// returns.
const MaxMessageLen = 512

// maxNormalizeInput bounds the work NormalizeMessage does: only the first
// this many bytes of a message are looked at.
const maxNormalizeInput = 8 << 10

// fingerprintVersion is hashed first, so that a change to the normalization
// rules can be made explicit by bumping it (old and new issues then no longer
// merge).
const fingerprintVersion = "conveyor-fingerprint-v1"

// The placeholders NormalizeMessage puts in place of what it strips.
const (
	phNumber = "<n>"
	phHex    = "<hex>"
	phUUID   = "<uuid>"
	phID     = "<id>"
	phEmail  = "<email>"
	phQuoted = "?"
)

var emailRE = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+`)

// NormalizeMessage reduces an error message to the part that is the same
// every time the same fault happens, for [Fingerprint]. In order, it:
//
//   - looks at the first 8 KiB only and replaces invalid UTF-8;
//   - drops URL query strings and fragments (https://host/path?token=… →
//     https://host/path);
//   - replaces e-mail addresses with <email>;
//   - looks at each word (a run of ASCII letters and digits) that has a
//     digit: a UUID becomes <uuid>; a word of 16 or more characters with at
//     least two digits and a letter (request ids, ULIDs, tokens) becomes
//     <id>; 0x-prefixed hex and hex words of 8 or more characters become
//     <hex>; in any other word each run of digits becomes <n>, and numbers
//     joined by . , or : (1.5, 10.0.0.1:80, 1,234, 12:30:01) become one <n>;
//   - replaces the contents of quoted values ('…', "…", `…`, “…”, ‘…’) with
//     ?, when the opening quote starts a word (so the apostrophe in "can't"
//     is left alone) and a closing quote follows;
//   - turns runs of white space and control characters into one space and
//     trims the ends;
//   - cuts the result to [MaxMessageLen] bytes on a character boundary.
//
// It is deterministic and idempotent: NormalizeMessage(NormalizeMessage(s))
// == NormalizeMessage(s) (a fuzz target checks it): the word rules need a
// digit and the placeholders have none, and the other rules leave nothing
// they would act on again.
func NormalizeMessage(msg string) string {
	if len(msg) > maxNormalizeInput {
		msg = msg[:maxNormalizeInput]
	}
	s := strings.ToValidUTF8(msg, "\uFFFD")
	s = stripURLQueries(s)
	if strings.Contains(s, "@") {
		s = emailRE.ReplaceAllLiteralString(s, phEmail)
	}
	s = replaceWords(s)
	s = stripQuoted(s)
	s = collapseSpace(s)
	if len(s) > MaxMessageLen {
		cut := MaxMessageLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = strings.TrimRightFunc(s[:cut], isBlank)
	}
	return s
}

// stripURLQueries drops the query string and fragment of every URL: after
// "scheme://" and the host and path (up to white space, a quote, < or >),
// everything from ? or # up to white space, a quote, < or >.
func stripURLQueries(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	var out []byte
	copied := 0 // s[:copied] is in out (once out is in use)
	for i := 0; ; {
		k := strings.Index(s[i:], "://")
		if k < 0 {
			break
		}
		sep := i + k
		scheme := false
		for b := sep - 1; b >= 0 && isSchemeByte(s[b]); b-- {
			scheme = scheme || isLetter(s[b])
		}
		p := sep + 3
		if !scheme {
			i = p
			continue
		}
		for p < len(s) && !isURLStop(s[p]) && s[p] != '?' && s[p] != '#' {
			p++
		}
		if p < len(s) && (s[p] == '?' || s[p] == '#') {
			q := p
			for q < len(s) && !isURLStop(s[q]) {
				q++
			}
			out = append(out, s[copied:p]...)
			copied = q
			p = q
		}
		i = p
	}
	if out == nil {
		return s
	}
	return string(append(out, s[copied:]...))
}

func isSchemeByte(c byte) bool { return isAlnum(c) || c == '+' || c == '.' || c == '-' }

// isURLStop reports the bytes that end a URL: ASCII white space, quotes, <
// and >.
func isURLStop(c byte) bool { return strings.IndexByte(" \t\n\f\r\"'`<>", c) >= 0 }

// replaceWords applies the word rules (see NormalizeMessage) in one pass.
func replaceWords(s string) string {
	if !hasDigit(s) {
		return s
	}
	out := make([]byte, 0, len(s)+16)
	for i := 0; i < len(s); {
		if !isAlnum(s[i]) {
			out = append(out, s[i])
			i++
			continue
		}
		if n := uuidLen(s[i:]); n > 0 {
			out = append(out, phUUID...)
			i += n
			continue
		}
		j := i
		for j < len(s) && isAlnum(s[j]) {
			j++
		}
		switch w := s[i:j]; {
		case isIDWord(w):
			out = append(out, phID...)
		case isHexWord(w):
			out = append(out, phHex...)
		default:
			out = appendNumbersReplaced(out, w)
		}
		i = j
	}
	return string(out)
}

// appendNumbersReplaced appends w with each run of digits replaced by <n>. A
// run at the start of w that follows "<n>" and one of . , : joins that
// number.
func appendNumbersReplaced(out []byte, w string) []byte {
	for k := 0; k < len(w); {
		if !isDigit(w[k]) {
			out = append(out, w[k])
			k++
			continue
		}
		if k == 0 && len(out) > len(phNumber) && strings.ContainsRune(".,:", rune(out[len(out)-1])) &&
			string(out[len(out)-1-len(phNumber):len(out)-1]) == phNumber {
			out = out[:len(out)-1] // "<n>." + digits → "<n>"
		} else {
			out = append(out, phNumber...)
		}
		for k < len(w) && isDigit(w[k]) {
			k++
		}
	}
	return out
}

// uuidLen returns 36 when s starts with a UUID (8-4-4-4-12 hex digits, at
// least one a decimal digit) not followed by a letter or digit, else 0.
func uuidLen(s string) int {
	const n = 36
	if len(s) < n || (len(s) > n && isAlnum(s[n])) {
		return 0
	}
	digit := false
	for k := range n {
		c := s[k]
		switch k {
		case 8, 13, 18, 23:
			if c != '-' {
				return 0
			}
			continue
		}
		if !isHexDigit(c) {
			return 0
		}
		digit = digit || isDigit(c)
	}
	if !digit {
		return 0
	}
	return n
}

func isIDWord(w string) bool {
	if len(w) < 16 {
		return false
	}
	digits := 0
	for k := 0; k < len(w); k++ {
		if isDigit(w[k]) {
			digits++
		}
	}
	return digits >= 2 && digits < len(w)
}

func isHexWord(w string) bool {
	if len(w) > 2 && w[0] == '0' && (w[1] == 'x' || w[1] == 'X') {
		return allHex(w[2:])
	}
	return len(w) >= 8 && allHex(w) && hasDigit(w)
}

func allHex(w string) bool {
	for k := 0; k < len(w); k++ {
		if !isHexDigit(w[k]) {
			return false
		}
	}
	return true
}

func hasDigit(s string) bool { return strings.ContainsAny(s, "0123456789") }

func isDigit(c byte) bool    { return c >= '0' && c <= '9' }
func isHexDigit(c byte) bool { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }
func isLetter(c byte) bool   { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isAlnum(c byte) bool    { return isDigit(c) || isLetter(c) }

// quotePairs maps each opening quote to its closing quote.
var quotePairs = map[rune]rune{'\'': '\'', '"': '"', '`': '`', '“': '”', '‘': '’'}

// stripQuoted replaces the contents of quoted values with phQuoted. An
// opening quote counts only at the start of the text or after a character
// that is not a letter, digit or underscore; inside a quote a backslash
// escapes the next character. A quote without its closing quote is left as
// it is.
func stripQuoted(s string) string {
	if !strings.ContainsAny(s, "'\"`“‘") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	prev := rune(-1) // -1: start of text
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		closing, isQuote := quotePairs[r]
		if isQuote && (prev == -1 || !isWordRune(prev)) {
			if end := closingQuote(s, i+size, closing); end >= 0 {
				b.WriteRune(r)
				b.WriteString(phQuoted)
				b.WriteRune(closing)
				i = end + utf8.RuneLen(closing)
				prev = closing
				continue
			}
		}
		b.WriteString(s[i : i+size])
		prev = r
		i += size
	}
	return b.String()
}

// closingQuote returns the byte offset of the closing quote at or after
// from, honouring backslash escapes, or -1 when there is none.
func closingQuote(s string, from int, closing rune) int {
	for j := from; j < len(s); {
		r, size := utf8.DecodeRuneInString(s[j:])
		switch {
		case r == '\\':
			j += size
			if j < len(s) {
				_, next := utf8.DecodeRuneInString(s[j:])
				j += next
			}
			continue
		case r == closing:
			return j
		}
		j += size
	}
	return -1
}

func isWordRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
}

func isBlank(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }

// collapseSpace turns every run of white space and control characters into
// one space and trims both ends.
func collapseSpace(s string) string {
	out := make([]byte, 0, len(s))
	pending := false
	for i := 0; i < len(s); {
		c := s[i]
		size := 1
		blank := c <= ' ' || c == 0x7f
		if c >= utf8.RuneSelf {
			var r rune
			r, size = utf8.DecodeRuneInString(s[i:])
			blank = isBlank(r)
		}
		if blank {
			pending = len(out) > 0
		} else {
			if pending {
				out = append(out, ' ')
				pending = false
			}
			out = append(out, s[i:i+size]...)
		}
		i += size
	}
	return string(out)
}

// Fingerprint identifies one issue: alike failures share it. It is the first
// 16 bytes, in hex, of a SHA-256 over source (what reported it, such as a job
// failure, a queue-health check or an AI-service check), kind, class (the job
// class, queue or service name) and [NormalizeMessage](message). The parts
// are length-prefixed, so no two different tuples hash the same input.
func Fingerprint(source, kind, class, message string) string {
	h := sha256.New()
	for _, part := range [...]string{fingerprintVersion, source, kind, class, NormalizeMessage(message)} {
		writePart(h, part)
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

func writePart(h hash.Hash, part string) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(part)))])
	io.WriteString(h, part)
}
