package events_test

import (
	"crypto/sha256"
	"encoding/base64"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode"

	"github.com/cairn-io/cairn/events"
)

// checkToken reports why tok is not a valid NATS subject token, or "".
// Tokens are also kept to printable ASCII, so that every client and every
// log shows them the same way.
func checkToken(tok string) string {
	if tok == "" {
		return "empty"
	}
	for _, r := range tok {
		switch {
		case r == '.' || r == '*' || r == '>':
			return "contains " + string(r)
		case unicode.IsSpace(r) || unicode.IsControl(r):
			return "contains white space or a control character"
		case r > unicode.MaxASCII:
			return "contains non-ASCII"
		}
	}
	return ""
}

func TestThreadToken(t *testing.T) {
	hashed := func(id string) string {
		sum := sha256.Sum256([]byte(id))
		return "~~" + base64.RawURLEncoding.EncodeToString(sum[:])
	}
	encoded := func(id string) string { return "~" + base64.RawURLEncoding.EncodeToString([]byte(id)) }
	tests := []struct {
		name, id, want string
	}{
		{"plain", "thread-1", "thread-1"},
		{"plain with every character", "AZaz09_-", "AZaz09_-"},
		{"plain of 64 bytes", strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{"plain of 65 bytes", strings.Repeat("a", 65), encoded(strings.Repeat("a", 65))},
		{"dot", "a.b", "~YS5i"},
		{"star", "a*b", encoded("a*b")},
		{"greater than", "a>b", encoded("a>b")},
		{"wildcards only", ".*>", encoded(".*>")},
		{"space", "a b", encoded("a b")},
		{"leading tilde", "~abc", encoded("~abc")},
		{"looks encoded", "~YS5i", encoded("~YS5i")},
		{"unicode", "スレッド", encoded("スレッド")},
		{"emoji", "😀", encoded("😀")},
		{"line separator", "a\u2028b", encoded("a\u2028b")},
		{"128 bytes", strings.Repeat("é", 64), encoded(strings.Repeat("é", 64))},
		{"129 bytes", strings.Repeat("é", 64) + "x", hashed(strings.Repeat("é", 64) + "x")},
		{"512 bytes of plain characters", strings.Repeat("a", 512), hashed(strings.Repeat("a", 512))},
		{"510 bytes of three-byte characters", strings.Repeat("語", 170), hashed(strings.Repeat("語", 170))},
		{"512 bytes with dots", strings.Repeat("a.", 256), hashed(strings.Repeat("a.", 256))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := events.ThreadToken(tt.id)
			if tok != tt.want {
				t.Errorf("ThreadToken(%q): got %q, want %q", tt.id, tok, tt.want)
			}
			if why := checkToken(tok); why != "" {
				t.Errorf("ThreadToken(%q) = %q: not a valid token: %s", tt.id, tok, why)
			}
			id, ok := events.ThreadFromToken(tok)
			switch {
			case len(tt.id) <= 128 && (!ok || id != tt.id):
				t.Errorf("ThreadFromToken(%q): got %q, %v, want %q, true", tok, id, ok, tt.id)
			case len(tt.id) > 128 && ok:
				t.Errorf("ThreadFromToken(%q): got %q, true, want false for a hashed token", tok, id)
			}
		})
	}
}

// TestThreadTokenRandom checks, over random ids of every form, that tokens
// are valid, reversible up to 128 bytes, and never shared by two ids.
func TestThreadTokenRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabets := []string{
		"abcXYZ019_-",             // plain
		"ab_-.*> ~",               // NATS specials
		"aé語😀\u2028~",             // multi-byte
		"a\u00a0b\u3000c\u200bd.", // unusual spaces
	}
	randomID := func() string {
		alphabet := []rune(alphabets[rng.IntN(len(alphabets))])
		n := 1 + rng.IntN(200)
		if rng.IntN(4) == 0 {
			n = 1 + rng.IntN(events.MaxIDBytes)
		}
		var b strings.Builder
		for b.Len() < n {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	owner := map[string]string{} // token -> id
	for i := 0; i < 20000; i++ {
		id := randomID()
		if len(id) > events.MaxIDBytes {
			continue
		}
		tok := events.ThreadToken(id)
		if why := checkToken(tok); why != "" {
			t.Fatalf("ThreadToken(%q) = %q: not a valid token: %s", id, tok, why)
		}
		if other, ok := owner[tok]; ok && other != id {
			t.Fatalf("ThreadToken: %q and %q share token %q", other, id, tok)
		}
		owner[tok] = id
		if got, ok := events.ThreadFromToken(tok); len(id) <= 128 && (!ok || got != id) {
			t.Fatalf("ThreadFromToken(%q): got %q, %v, want %q, true", tok, got, ok, id)
		}
		// A plain id and the encoded form of that same id must differ.
		if enc := "~" + base64.RawURLEncoding.EncodeToString([]byte(id)); enc != tok {
			if got, ok := events.ThreadFromToken(enc); ok && got == id {
				t.Fatalf("ThreadFromToken(%q): got %q, true, want false: %q is its only token", enc, got, tok)
			}
		}
	}
	if got, min := len(owner), 15000; got < min {
		t.Errorf("distinct ids: got %d, want at least %d", got, min)
	}
}

func TestThreadFromTokenRejects(t *testing.T) {
	for _, tok := range []string{
		"",
		"a.b",
		"a b",
		"~~" + strings.Repeat("A", 43), // hashed
		"~!!",                          // not base64url
		"~YWJj",                        // "abc": its token is "abc"
		"~YS5i=",                       // padded
		"~Lh",                          // "." with a trailing bit set: its token is "~Lg"
		"~" + base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("x", 129))), // too long to encode
	} {
		if id, ok := events.ThreadFromToken(tok); ok {
			t.Errorf("ThreadFromToken(%q): got %q, true, want false", tok, id)
		}
	}
}

func TestSubject(t *testing.T) {
	tests := []struct {
		root, fleet, thread, want string
	}{
		{events.DefaultRoot, events.DefaultFleet, "thread-1", "cairn.default.thread-1"},
		{"cairn", "f1", "a.b", "cairn.f1.~YS5i"},
		{"r", "f", "a>b", "r.f.~YT5i"},
	}
	for _, tt := range tests {
		if got := events.Subject(tt.root, tt.fleet, tt.thread); got != tt.want {
			t.Errorf("Subject(%q, %q, %q): got %q, want %q", tt.root, tt.fleet, tt.thread, got, tt.want)
		}
	}
	if got, want := events.FleetFilter("cairn", "f1"), "cairn.f1.>"; got != want {
		t.Errorf("FleetFilter: got %q, want %q", got, want)
	}
}

func TestCheckSubject(t *testing.T) {
	e := &events.Event{Fleet: "f1", ThreadID: "a.b"}
	tests := []struct {
		subject string
		ok      bool
	}{
		{"cairn.f1.~YS5i", true},
		{"cairn.f1.a.b", false},     // raw id
		{"cairn.f2.~YS5i", false},   // another fleet
		{"other.f1.~YS5i", false},   // another root
		{"cairn.f1.~YS5j", false},   // another thread
		{"cairn.f1.~YS5i.x", false}, // extra token
		{"cairn.f1", false},
	}
	for _, tt := range tests {
		err := events.CheckSubject("cairn", tt.subject, e)
		if tt.ok {
			if err != nil {
				t.Errorf("CheckSubject(%q): got %v, want nil", tt.subject, err)
			}
			continue
		}
		wantInvalid(t, "CheckSubject("+tt.subject+")", err)
	}
}

func TestCheckNames(t *testing.T) {
	tests := []struct {
		root, fleet string
		ok          bool
	}{
		{"cairn", "default", true},
		{strings.Repeat("r", 64), "F_1-x", true},
		{"", "default", false},
		{"cairn", "", false},
		{"a.b", "default", false},
		{"cairn", "a*", false},
		{"cairn", strings.Repeat("f", 65), false},
		{"cairn", "flotte-é", false},
	}
	for _, tt := range tests {
		if err := events.CheckNames(tt.root, tt.fleet); (err == nil) != tt.ok {
			t.Errorf("CheckNames(%q, %q): got %v, want ok=%v", tt.root, tt.fleet, err, tt.ok)
		}
	}
}
