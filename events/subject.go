package events

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
)

// Subject defaults.
const (
	DefaultRoot  = "cairn"
	DefaultFleet = "default"
)

// maxPlainToken and maxEncodedID bound the three token forms; see ThreadToken.
const (
	maxPlainToken = 64
	maxEncodedID  = 128
)

var plainTokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// ThreadToken maps any thread id to one valid NATS subject token, so that all
// events of a thread share one subject:
//
//   - an id of 1-64 ASCII letters, digits, '_' or '-' is its own token;
//   - any other id of at most 128 bytes becomes "~" + base64url(id), which is
//     reversible and never collides with the first form ('~' is not in it);
//   - a longer id becomes "~~" + base64url(sha256(id)).
//
// The payload always carries the full id, so a hashed token loses nothing.
func ThreadToken(threadID string) string {
	switch {
	case len(threadID) <= maxPlainToken && plainTokenRE.MatchString(threadID):
		return threadID
	case len(threadID) <= maxEncodedID:
		return "~" + base64.RawURLEncoding.EncodeToString([]byte(threadID))
	default:
		sum := sha256.Sum256([]byte(threadID))
		return "~~" + base64.RawURLEncoding.EncodeToString(sum[:])
	}
}

// ThreadFromToken reverses ThreadToken. ok is false for hashed tokens and
// for strings that no thread id maps to.
func ThreadFromToken(token string) (threadID string, ok bool) {
	switch {
	case strings.HasPrefix(token, "~~"):
		return "", false
	case strings.HasPrefix(token, "~"):
		b, err := base64.RawURLEncoding.DecodeString(token[1:])
		if err != nil || len(b) == 0 || ThreadToken(string(b)) != token {
			return "", false
		}
		return string(b), true
	case token != "" && ThreadToken(token) == token:
		return token, true
	}
	return "", false
}

// Subject returns the subject of a thread's events: <root>.<fleet>.<token>.
func Subject(root, fleet, threadID string) string {
	return root + "." + fleet + "." + ThreadToken(threadID)
}

// FleetFilter returns the subject filter of every event of one fleet.
func FleetFilter(root, fleet string) string {
	return root + "." + fleet + ".>"
}

// CheckSubject reports an Invalid error unless subject is the one that e
// must travel on under root. The writer uses it so that an event cannot
// claim another fleet or thread than the subject it was published to (NATS
// permissions confine publishers by subject).
func CheckSubject(root, subject string, e *Event) error {
	if want := Subject(root, e.Fleet, e.ThreadID); subject != want {
		return Errorf(Invalid, "subject %q does not match the event's fleet and thread (want %q)", subject, want)
	}
	return nil
}

// CheckNames validates a subject root and a fleet name.
func CheckNames(root, fleet string) error {
	if !ValidName(root) {
		return fmt.Errorf("subject root %q: want 1-64 of A-Z a-z 0-9 _ -", root)
	}
	if !ValidName(fleet) {
		return fmt.Errorf("fleet %q: want 1-64 of A-Z a-z 0-9 _ -", fleet)
	}
	return nil
}
