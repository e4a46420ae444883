package projector_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// TestCheckPrefix: the table prefix is the one piece of SQL text that comes
// from configuration; CheckPrefix lets through only identifiers that cannot
// change a statement's meaning.
func TestCheckPrefix(t *testing.T) {
	for _, p := range []string{"cairn", "a", "replay_2026", "t0a1b2c3d", "x_", strings.Repeat("p", projector.MaxPrefixLen)} {
		if err := projector.CheckPrefix(p); err != nil {
			t.Errorf("CheckPrefix(%q): %v, want nil", p, err)
		}
	}
	for _, p := range []string{
		"", "Cairn", "CAIRN", "1cairn", "_cairn", "cairn-x", "cairn x", "cairn.checkpoints", "public.cairn",
		"cairn;", "x; DROP TABLE cairn_checkpoints; --", "cairn_checkpoints WHERE 1=1 --", "x/*", "cairn--",
		`cairn"`, "cairn'", "cairn`", "cairn)", "(select 1)", "cairn\x00", "ca\nirn", "cairn\t", "çairn",
		"cairn_ä", "cairn\u200b", "cairn\xff", strings.Repeat("p", projector.MaxPrefixLen+1),
	} {
		err := projector.CheckPrefix(p)
		if !errors.Is(err, events.ErrInvalid) {
			t.Errorf("CheckPrefix(%q): got %v, want an invalid error", p, err)
			continue
		}
		if !strings.Contains(err.Error(), "table prefix") {
			t.Errorf("CheckPrefix(%q): error %q does not name the table prefix", p, err)
		}
	}
}

// safeIdentifier is what any accepted prefix must look like.
var safeIdentifier = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

func FuzzCheckPrefix(f *testing.F) {
	for _, s := range []string{"cairn", "x; DROP TABLE t; --", "a\x00", "Z", "a_1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if projector.CheckPrefix(p) == nil && !safeIdentifier.MatchString(p) {
			t.Errorf("CheckPrefix accepted %q", p)
		}
	})
}
