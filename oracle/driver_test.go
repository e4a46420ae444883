//go:build cgo

package oracle

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/godror/godror"

	"github.com/cairn-io/cairn/events"
)

func TestConnectionParams(t *testing.T) {
	p, err := connectionParams(Config{DSN: "db.example:1521/FREEPDB1", User: "cairn", Password: "secret", WalletDir: "/w",
		PoolMinSessions: 2, PoolMaxSessions: 12, PoolIncrement: 3})
	if err != nil {
		t.Fatal(err)
	}
	if p.IsStandalone() {
		t.Error("the session pool is off (standaloneConnection must be 0)")
	}
	if p.ConnectString != "db.example:1521/FREEPDB1" || p.Username != "cairn" || p.Password.Secret() != "secret" || p.ConfigDir != "/w" {
		t.Errorf("params %s user %q config %q", p.ConnectString, p.Username, p.ConfigDir)
	}
	if p.MinSessions != 2 || p.MaxSessions != 12 || p.SessionIncrement != 3 {
		t.Errorf("pool %d/%d/%d, want 2/12/3", p.MinSessions, p.MaxSessions, p.SessionIncrement)
	}
	if !strings.Contains(fmt.Sprint(p.AlterSession), "NLS_SORT BINARY") || !strings.Contains(fmt.Sprint(p.AlterSession), "NLS_COMP BINARY") {
		t.Errorf("sessions must sort by bytes: %v", p.AlterSession)
	}
	if strings.Contains(p.String(), "secret") {
		t.Error("the parameters' string shows the password")
	}

	d, err := connectionParams(Config{DSN: "scott/tiger@mydb_high"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Username != "scott" || d.Password.Secret() != "tiger" || d.ConnectString != "mydb_high" || d.IsStandalone() {
		t.Errorf("user/password@alias: %+v", d.CommonSimpleParams)
	}
	if d.MinSessions != DefaultPoolMinSessions || d.MaxSessions != DefaultPoolMaxSessions || d.SessionIncrement != DefaultPoolIncrement {
		t.Errorf("default pool %d/%d/%d", d.MinSessions, d.MaxSessions, d.SessionIncrement)
	}

	for dsn, want := range map[string]string{
		"db:1521/FREEPDB1":                      "db:1521/FREEPDB1",
		"tcps://db:1522/svc?wallet_location=/w": "tcps://db:1522/svc?wallet_location=/w",
		"(DESCRIPTION=(ADDRESS=(HOST=db)(PORT=1521))(CONNECT_DATA=(SERVICE_NAME=svc)))": "(DESCRIPTION=(ADDRESS=(HOST=db)(PORT=1521))(CONNECT_DATA=(SERVICE_NAME=svc)))",
		"mydb_high": "mydb_high",
		`user="u" password="p" connectString="db:1521/X"`: "db:1521/X",
	} {
		p, err := connectionParams(Config{DSN: dsn})
		if err != nil || p.ConnectString != want || (p.Username != "" && p.Username != "u") {
			t.Errorf("DSN %q: connect string %q user %q (%v), want %q", dsn, p.ConnectString, p.Username, err, want)
		}
	}

	for _, bad := range []Config{{}, {DSN: "x", PoolMaxSessions: 1}, {DSN: "x", PoolMinSessions: 9, PoolMaxSessions: 4}, {DSN: "x", PoolIncrement: -1}} {
		if _, err := connectionParams(bad); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("%+v: got %v, want invalid", bad, err)
		}
	}
}

func TestDescribeHidesPassword(t *testing.T) {
	for _, c := range []Config{
		{DSN: "scott/tiger@mydb_high", WalletDir: "/wallet"},
		{DSN: "db:1521/FREEPDB1", User: "scott", Password: "tiger"},
	} {
		got := c.Describe()
		if strings.Contains(got, "tiger") || !strings.Contains(got, "scott@") {
			t.Errorf("%+v: %q", c, got)
		}
	}
}

func TestJSONColumn(t *testing.T) {
	small := []string{`{"a":1}`, strings.Repeat("x", maxTextBind)}
	if got, ok := jsonColumn(small).([]string); !ok || !slices.Equal(got, small) {
		t.Errorf("texts up to %d bytes: got %T, want the strings", maxTextBind, jsonColumn(small))
	}
	big := []string{`{"a":1}`, `{"b":"` + strings.Repeat("é", 20000) + `"}`}
	lobs, ok := jsonColumn(big).([]godror.Lob)
	if !ok || len(lobs) != 2 {
		t.Fatalf("a text over %d bytes: got %T, want CLOBs for the whole column", maxTextBind, jsonColumn(big))
	}
	for i, l := range lobs {
		b, err := io.ReadAll(l.Reader)
		if err != nil || !l.IsClob || string(b) != big[i] {
			t.Errorf("lob %d: clob %v, %d bytes, err %v; want the exact text", i, l.IsClob, len(b), err)
		}
	}
	// Inserts put the CLOB columns last, after every short bind.
	for _, q := range []string{newStatements("cairn").insertCheckpoint, newStatements("cairn").insertWrite} {
		cols := bindColumns(q)
		last := cols[len(cols)]
		if last != "metadata" && last != "value" {
			t.Errorf("last bind is %s in %s", last, q)
		}
	}
}
