package query

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cairn-io/cairn/events"
)

// MinTokenBytes is the shortest bearer token ParseTokens accepts.
const MinTokenBytes = 8

// Token is a bearer token of the HTTP API and the threads it may read.
type Token struct {
	// Name identifies the token in logs; the secret is never logged.
	Name   string
	Secret string
	// Prefixes are the thread-id prefixes the token may read; "" is every
	// thread.
	Prefixes []string
}

// ParseTokens reads tokens, one per line:
//
//	<name> <secret> <thread-id prefix>...
//
// Fields are separated by spaces or tabs; a prefix holding spaces is
// written as a double-quoted Go string ("incident 7"). The prefix "*"
// allows every thread. Blank lines and lines starting with # are skipped;
// ';' also ends a line, so one environment variable can hold several
// tokens. Errors name the line and the token's name, never its secret.
func ParseTokens(text string) ([]Token, error) {
	var out []Token
	names := make(map[string]bool)
	secrets := make(map[string]string)
	lines := strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == ';' })
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields, err := splitFields(line)
		if err != nil {
			return nil, fmt.Errorf("tokens entry %d: %w", i+1, err)
		}
		if len(fields) < 3 {
			return nil, fmt.Errorf("tokens entry %d: want <name> <secret> <thread-id prefix or *>..., got %d fields", i+1, len(fields))
		}
		t := Token{Name: fields[0], Secret: fields[1]}
		switch {
		case names[t.Name]:
			return nil, fmt.Errorf("tokens entry %d: name %q used twice", i+1, t.Name)
		case len(t.Secret) < MinTokenBytes:
			return nil, fmt.Errorf("tokens entry %d (%s): the secret is shorter than %d bytes", i+1, t.Name, MinTokenBytes)
		case secrets[t.Secret] != "":
			return nil, fmt.Errorf("tokens entry %d (%s): same secret as %s", i+1, t.Name, secrets[t.Secret])
		}
		for _, p := range fields[2:] {
			if p == "*" {
				p = ""
			} else if p == "" {
				return nil, fmt.Errorf("tokens entry %d (%s): empty prefix (write * for every thread)", i+1, t.Name)
			}
			t.Prefixes = append(t.Prefixes, p)
		}
		names[t.Name], secrets[t.Secret] = true, t.Name
		out = append(out, t)
	}
	return out, nil
}

// splitFields splits a tokens line on spaces and tabs; a field that starts
// with a double quote is a Go string literal.
func splitFields(line string) ([]string, error) {
	var out []string
	for {
		line = strings.TrimLeftFunc(line, unicode.IsSpace)
		if line == "" {
			return out, nil
		}
		if line[0] == '"' {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				return nil, fmt.Errorf("unterminated or bad quoted field")
			}
			v, _ := strconv.Unquote(q)
			if !utf8.ValidString(v) {
				return nil, fmt.Errorf("quoted field is not valid UTF-8")
			}
			out, line = append(out, v), line[len(q):]
			continue
		}
		end := strings.IndexFunc(line, unicode.IsSpace)
		if end < 0 {
			end = len(line)
		}
		out, line = append(out, line[:end]), line[end:]
	}
}

// scope is what a request may read: nil means everything (no tokens
// configured, or the NATS micro service, which NATS permissions govern).
type scope struct {
	name     string
	prefixes []string // "" allows every thread
}

type scopeKey struct{}

func withScope(ctx context.Context, sc *scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, sc)
}

func scopeFrom(ctx context.Context) *scope {
	sc, _ := ctx.Value(scopeKey{}).(*scope)
	return sc
}

// all reports whether the scope allows every thread.
func (sc *scope) all() bool {
	if sc == nil {
		return true
	}
	for _, p := range sc.prefixes {
		if p == "" {
			return true
		}
	}
	return false
}

func (sc *scope) allows(threadID string) bool {
	if sc.all() {
		return true
	}
	for _, p := range sc.prefixes {
		if strings.HasPrefix(threadID, p) {
			return true
		}
	}
	return false
}

// narrow returns the prefixes that select the threads starting with
// prefix which the scope allows: nil for every thread; ok is false when
// there are none.
func (sc *scope) narrow(prefix string) (prefixes []string, ok bool) {
	if sc.all() {
		if prefix == "" {
			return nil, true
		}
		return []string{prefix}, true
	}
	for _, p := range sc.prefixes {
		switch {
		case strings.HasPrefix(prefix, p):
			return []string{prefix}, true
		case strings.HasPrefix(p, prefix):
			prefixes = append(prefixes, p)
		}
	}
	return prefixes, len(prefixes) > 0
}

// checkScope answers an out-of-scope thread exactly as a missing one, so
// that the answer does not depend on whether the thread exists.
func checkScope(ctx context.Context, threadID string) error {
	if !scopeFrom(ctx).allows(threadID) {
		return events.Errorf(events.NotFound, "thread %q not found", threadID)
	}
	return nil
}

// tokenSet checks bearer tokens in constant time per token.
type tokenSet struct {
	hashes [][sha256.Size]byte
	scopes []*scope
}

func newTokenSet(tokens []Token) *tokenSet {
	if len(tokens) == 0 {
		return nil
	}
	ts := &tokenSet{}
	for _, t := range tokens {
		ts.hashes = append(ts.hashes, sha256.Sum256([]byte(t.Secret)))
		ts.scopes = append(ts.scopes, &scope{name: t.Name, prefixes: t.Prefixes})
	}
	return ts
}

// errUnauthorized is the one error the API answers with 401: it is about
// the request's credentials, not about what it asks for.
type errUnauthorized struct{ msg string }

func (e *errUnauthorized) Error() string { return e.msg }

// authenticate returns the scope of the request's bearer token. Every
// token is compared, so the time taken does not tell which one matched.
func (ts *tokenSet) authenticate(r *http.Request) (*scope, error) {
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		return nil, &errUnauthorized{"missing bearer token: send Authorization: Bearer <token>"}
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(secret)))
	var found *scope
	for i, hash := range ts.hashes {
		if subtle.ConstantTimeCompare(sum[:], hash[:]) == 1 {
			found = ts.scopes[i]
		}
	}
	if found == nil {
		return nil, &errUnauthorized{"unknown bearer token"}
	}
	return found, nil
}

// writeUnauthorized answers 401 with a JSON error and a Bearer challenge.
func writeUnauthorized(w http.ResponseWriter, err error) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="cairn"`)
	b := []byte(`{"code":"unauthorized","message":`)
	b = events.AppendString(b, err.Error())
	writeBody(w, http.StatusUnauthorized, append(b, '}'))
}
