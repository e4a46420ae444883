package oracle

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-io/cairn/events"
)

// oraError stands in for godror's *OraErr, which has no exported
// constructor: classify matches the interface, a Code() method.
type oraError struct {
	code int
	msg  string
}

func (e oraError) Error() string { return fmt.Sprintf("ORA-%05d: %s", e.code, e.msg) }
func (e oraError) Code() int     { return e.code }

func TestClassify(t *testing.T) {
	cases := []struct {
		name     string
		err      error
		code     events.Code
		contains []string
	}{
		{"lost connection", oraError{3113, "end-of-file on communication channel"}, events.Unavailable, []string{"ORA-03113"}},
		{"not connected", oraError{3114, "not connected"}, events.Unavailable, nil},
		{"lost contact", oraError{3135, "connection lost contact"}, events.Unavailable, nil},
		{"TNS closed", oraError{12537, "TNS:connection closed"}, events.Unavailable, nil},
		{"TNS lost contact", oraError{12547, "TNS:lost contact"}, events.Unavailable, nil},
		{"no listener", oraError{12541, "TNS:no listener"}, events.Unavailable, nil},
		{"unknown service", oraError{12514, "listener does not currently know of service"}, events.Unavailable, nil},
		{"connect timeout", oraError{12170, "TNS:Connect timeout occurred"}, events.Unavailable, nil},
		{"call timeout", oraError{3156, "OCI call timed out"}, events.Unavailable, nil},
		{"deadlock", oraError{60, "deadlock detected"}, events.Unavailable, nil},
		{"concurrent insert", oraError{1, "unique constraint violated"}, events.Unavailable, []string{"concurrent writer"}},
		{"schema missing", oraError{942, "table or view does not exist"}, events.Unavailable,
			[]string{"schema", `prefix "cairn"`, "schema.sql", "--oracle-no-ddl"}},
		{"wrapped", fmt.Errorf("lock threads: %w", oraError{12547, "lost"}), events.Unavailable, []string{"lock threads"}},
		{"bad connection", fmt.Errorf("exec: %w", driver.ErrBadConn), events.Unavailable, nil},
		{"no client", errors.New(`ORA-00000: DPI-1047: Cannot locate a 64-bit Oracle Client library: "libclntsh.so: cannot open shared object file"`),
			events.Internal, []string{"Instant Client", "21 or later", "23.x", "LD_LIBRARY_PATH", "DPI-1047"}},
		{"invalid identifier", oraError{904, "invalid identifier"}, events.Internal, []string{"ORA-00904"}},
		{"check constraint", oraError{2290, "check constraint violated"}, events.Internal, nil},
		{"coded already", events.Errorf(events.Invalid, "bad"), events.Invalid, nil},
		{"canceled", fmt.Errorf("query: %w", context.Canceled), events.Internal, nil},
	}
	for _, c := range cases {
		got := classify("cairn", "update", c.err)
		if code := events.ErrorCode(got); code != c.code {
			t.Errorf("%s: code %s, want %s (%v)", c.name, code, c.code, got)
		}
		if !errors.Is(got, c.err) {
			t.Errorf("%s: %v does not wrap the cause", c.name, got)
		}
		if !strings.HasPrefix(got.Error(), "oracle update: ") {
			t.Errorf("%s: %q lacks the operation", c.name, got)
		}
		for _, want := range c.contains {
			if !strings.Contains(got.Error(), want) {
				t.Errorf("%s: %q does not mention %q", c.name, got, want)
			}
		}
	}
	if classify("cairn", "x", nil) != nil {
		t.Error("nil error classified as non-nil")
	}
	if !errors.Is(classify("cairn", "x", context.DeadlineExceeded), context.DeadlineExceeded) {
		t.Error("deadline exceeded lost")
	}
}

func TestCheckWallet(t *testing.T) {
	dir := t.TempDir()
	if err := checkWallet("", ""); err != nil {
		t.Errorf("no wallet: %v", err)
	}
	if err := checkWallet("", "pw"); err != nil {
		t.Errorf("a password without a wallet is unused: got %v", err)
	}
	if err := checkWallet(filepath.Join(dir, "missing"), ""); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("missing directory: got %v", err)
	}
	err := checkWallet(dir, "pw")
	if !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), "cwallet.sso") || !strings.Contains(err.Error(), "auto_login") {
		t.Errorf("password-only wallet: got %v, want the auto-login explanation", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cwallet.sso"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{"", "pw"} {
		if err := checkWallet(dir, pw); err != nil {
			t.Errorf("auto-login wallet, password %q: %v", pw, err)
		}
	}
}
