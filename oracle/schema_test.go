package oracle

import (
	"errors"
	"flag"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

var update = flag.Bool("update", false, "rewrite schema.sql from SchemaScript")

// TestSchemaFile keeps oracle/schema.sql, the script for DBAs, equal to
// what the store executes.
func TestSchemaFile(t *testing.T) {
	want := SchemaScript(projector.DefaultPrefix)
	if *update {
		if err := os.WriteFile("schema.sql", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("schema.sql differs from SchemaScript(\"cairn\"); regenerate it: go generate ./oracle")
	}
}

// scriptStatements splits a SQL*Plus script the way SQL*Plus does for
// these statements: each ends with ";" at the end of a line.
func scriptStatements(script string) []string {
	var out []string
	for _, s := range splitStatements(script) {
		if s != "COMMIT" {
			out = append(out, s)
		}
	}
	return out
}

// TestScriptIsWhatRuns checks statement for statement that the script
// holds exactly the statements migrate executes for the same prefix.
func TestScriptIsWhatRuns(t *testing.T) {
	want := []string{expand("cairn", versionTableDDL)}
	for _, m := range migrations {
		want = append(want, ddlStatements("cairn", m)...)
	}
	got := scriptStatements(SchemaScript("cairn"))
	if !slices.Equal(got, want) {
		t.Fatalf("script statements differ from the executed ones:\ngot  %q\nwant %q", got, want)
	}
	if !strings.HasSuffix(SchemaScript("cairn"), "\nCOMMIT;\n") {
		t.Error("the script does not commit the recorded version")
	}
}

func TestStatementsAreOracleDDL(t *testing.T) {
	for _, m := range migrations {
		stmts := ddlStatements("cairn", m)
		if len(stmts) < 2 {
			t.Fatalf("%s: %d statements", m.name, len(stmts))
		}
		for _, s := range stmts {
			if strings.HasSuffix(strings.TrimSpace(s), ";") {
				t.Errorf("%s: statement ends with ';', which OCI rejects: %s", m.name, s)
			}
			if strings.Contains(s, "{{") {
				t.Errorf("%s: placeholder left: %s", m.name, s)
			}
			if strings.Contains(s, "\n\n") {
				t.Errorf("%s: blank line inside a statement (SQL*Plus would end it there): %s", m.name, s)
			}
			switch first := strings.Fields(s)[0] + " " + strings.Fields(s)[1]; first {
			case "CREATE TABLE", "CREATE INDEX":
				// The documented 23ai form: the clause after TABLE/INDEX,
				// before the name.
				if !strings.HasPrefix(s, first+" IF NOT EXISTS cairn_") {
					t.Errorf("%s: not idempotent: %s", m.name, s)
				}
			case "MERGE INTO":
				if !strings.Contains(s, "WHEN NOT MATCHED") || strings.Contains(s, "WHEN MATCHED") {
					t.Errorf("%s: version record is not insert-if-absent: %s", m.name, s)
				}
			default:
				t.Errorf("%s: unexpected statement: %s", m.name, s)
			}
		}
	}
}

// TestKeyWidths checks the arithmetic of the schema comment: every primary
// key and index stays well inside Oracle's index key limit (ORA-01450: about
// 6,398 bytes with 8 KB blocks, 3,118 with 4 KB blocks).
func TestKeyWidths(t *testing.T) {
	const limit4K = 3118
	tableRE := regexp.MustCompile(`^CREATE TABLE IF NOT EXISTS (\w+)`)
	colRE := regexp.MustCompile(`(?m)^\s+(\w+)\s+(?:VARCHAR2\((\d+) BYTE\)|(NUMBER)\(\d+\))`)
	pkRE := regexp.MustCompile(`PRIMARY KEY \(([^)]*)\)`)
	indexRE := regexp.MustCompile(`(?s)^CREATE INDEX IF NOT EXISTS \w+ ON (\w+)\s+\((.*)\)$`)
	// A key expression's width is that of its RETURNING type.
	returningRE := regexp.MustCompile(`RETURNING VARCHAR2\((\d+) BYTE\)`)
	widths := map[string]map[string]int{} // table -> column -> bytes
	var keys [][2]string                  // table, columns
	for _, m := range migrations {
		for _, s := range ddlStatements("cairn", m) {
			if tm := tableRE.FindStringSubmatch(s); tm != nil {
				cols := map[string]int{}
				for _, c := range colRE.FindAllStringSubmatch(s, -1) {
					if c[3] != "" {
						cols[c[1]] = 22 // a NUMBER takes at most 22 bytes
					} else {
						cols[c[1]], _ = strconv.Atoi(c[2])
					}
				}
				widths[tm[1]] = cols
				for _, pk := range pkRE.FindAllStringSubmatch(s, -1) {
					keys = append(keys, [2]string{tm[1], pk[1]})
				}
			}
			if im := indexRE.FindStringSubmatch(s); im != nil {
				keys = append(keys, [2]string{im[1], im[2]})
			}
		}
	}
	if len(keys) < 10 {
		t.Fatalf("found %d keys in the DDL", len(keys))
	}
	for _, k := range keys {
		total := 10 // the rowid an index entry carries
		for _, col := range keyParts(k[1]) {
			w, ok := widths[k[0]][col]
			if m := returningRE.FindStringSubmatch(col); m != nil {
				w, _ = strconv.Atoi(m[1])
				ok = true
			}
			if !ok {
				t.Fatalf("%s (%s): key %q is not a VARCHAR2 BYTE or NUMBER column nor an expression RETURNING VARCHAR2(n BYTE)", k[0], k[1], col)
			}
			total += w + 3 // plus its length bytes
		}
		if total > limit4K {
			t.Errorf("%s (%s): up to %d bytes, over %d", k[0], k[1], total, limit4K)
		}
	}
}

// keyParts splits an index's key list at its top-level commas: those
// outside parentheses and quotes.
func keyParts(list string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i, r := range list {
		switch {
		case r == '\'':
			quoted = !quoted
		case quoted:
		case r == '(':
			depth++
		case r == ')':
			depth--
		case r == ',' && depth == 0:
			out = append(out, strings.TrimSpace(list[start:i]))
			start = i + 1
		}
	}
	return append(out, strings.TrimSpace(list[start:]))
}

func TestCheckPrefix(t *testing.T) {
	for _, ok := range []string{"cairn", "a", "replay_2", strings.Repeat("p", projector.MaxPrefixLen)} {
		if err := CheckPrefix(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	bad := []string{"", "Cairn", "cairn;drop table x", "cairn--", `ca"irn`, "cairn x", "_cairn", "9cairn", "caírn",
		"cairn$", "cairn#", "cairn'||'x", strings.Repeat("p", projector.MaxPrefixLen+1)}
	for _, p := range bad {
		if err := CheckPrefix(p); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("%q: got %v, want invalid", p, err)
		}
	}
}

// TestNameLengths checks the 128-byte rule itself, with a prefix longer
// than projector allows, and that every object name comes from the DDL.
func TestNameLengths(t *testing.T) {
	suffixes := schemaSuffixes()
	for _, want := range []string{"_threads", "_checkpoints_pk", "_checkpoints_ns_seq", "_schema_version", "_writes_value_json"} {
		if !slices.Contains(suffixes, want) {
			t.Errorf("suffix %s not found in the DDL (have %v)", want, suffixes)
		}
	}
	for _, tbl := range tableSuffixes {
		if !slices.Contains(suffixes, tbl) {
			t.Errorf("table %s is not in the DDL", tbl)
		}
	}
	longest := 0
	for _, s := range suffixes {
		longest = max(longest, len(s))
	}
	if err := checkNames(strings.Repeat("p", MaxIdentifierBytes-longest), suffixes); err != nil {
		t.Errorf("a name of exactly %d bytes: %v", MaxIdentifierBytes, err)
	}
	if err := checkNames(strings.Repeat("p", MaxIdentifierBytes-longest+1), suffixes); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("a name of %d bytes: got %v, want invalid", MaxIdentifierBytes+1, err)
	}
	if projector.MaxPrefixLen+longest > MaxIdentifierBytes {
		t.Errorf("projector.MaxPrefixLen %d + %d exceeds %d", projector.MaxPrefixLen, longest, MaxIdentifierBytes)
	}
}
