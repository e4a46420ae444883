package projector

import (
	"regexp"

	"github.com/cairn-io/cairn/events"
)

// DefaultPrefix is the default table prefix.
const DefaultPrefix = "cairn"

// MaxPrefixLen keeps every table and index name (prefix + longest suffix)
// within PostgreSQL's 63-byte and Oracle's 128-byte identifier limits.
const MaxPrefixLen = 40

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// CheckPrefix validates a table prefix before any SQL is built from it: a
// lowercase letter, then lowercase letters, digits or '_', at most
// MaxPrefixLen bytes. Stores interpolate only validated prefixes into SQL;
// every value travels as a bind variable.
func CheckPrefix(prefix string) error {
	if len(prefix) == 0 || len(prefix) > MaxPrefixLen || !prefixRE.MatchString(prefix) {
		return events.Errorf(events.Invalid, "table prefix %q: want a lowercase letter, then lowercase letters, digits or '_', at most %d bytes", prefix, MaxPrefixLen)
	}
	return nil
}
