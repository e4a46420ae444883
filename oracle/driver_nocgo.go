//go:build !cgo

package oracle

import (
	"database/sql"

	"github.com/cairn-io/cairn/events"
)

// openDB fails: godror, the Oracle driver, is a cgo package, and this
// binary was built without cgo.
func openDB(Config) (*sql.DB, error) {
	return nil, events.Errorf(events.Invalid, "oracle: this binary was built without cgo (CGO_ENABLED=0, or no C compiler found); "+
		"the Oracle store needs a cgo build (gcc) and Oracle Instant Client at run time")
}

// Describe names the connection for logs.
func (c Config) Describe() string { return "(no Oracle support in this build)" }

// clobColumn is never reached without a database.
func clobColumn(texts []string) any { return texts }
