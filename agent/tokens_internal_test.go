package agent

import (
	"strings"
	"testing"
)

func TestCountTokensMatchesFields(t *testing.T) {
	for _, s := range []string{"", " ", "one", "  two  words ", "tab\tand\nnewline", "nbsp\u00a0split", "ideographic\u3000space", "é ✓ 😀", "a\u2028b"} {
		if got, want := countTokens(s), len(strings.Fields(s)); got != want {
			t.Errorf("countTokens(%q) = %d, want %d", s, got, want)
		}
	}
}
