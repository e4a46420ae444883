package oracle

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"github.com/cairn-io/cairn/events"
)

// ORA codes the store acts on.
const (
	codeUniqueViolation = 1     // ORA-00001: a concurrent writer inserted the same key
	codeResourceBusy    = 54    // ORA-00054: DDL on a table another session has locked
	codeDeadlock        = 60    // ORA-00060: deadlock detected; the statement was rolled back
	codeTableMissing    = 942   // ORA-00942: table or view does not exist
	codeNameInUse       = 955   // ORA-00955: name is already used (a concurrent CREATE)
	codeCallTimeout     = 3156  // ORA-03156: OCI call timed out (the context deadline)
	codeSerialize       = 8177  // ORA-08177: cannot serialize access
	codeSnapshotTooOld  = 1555  // ORA-01555: snapshot too old
	codeNotLoggedOn     = 1012  // ORA-01012: not logged on
	codeSessionKilled   = 28    // ORA-00028: your session has been killed
	codeStartingUp      = 1033  // ORA-01033: initialization or shutdown in progress
	codeNotAvailable    = 1034  // ORA-01034: ORACLE not available
	codeShuttingDown    = 1089  // ORA-01089: immediate shutdown in progress
	codeListenerBlocked = 12528 // ORA-12528: all instances are blocking new connections
)

// unavailableCodes are the ORA codes after which the same work may succeed
// later: the connection or the instance went away, or a lock conflict with
// another writer aborted the statement. The writer retries the batch with
// backoff; nothing of it was committed.
var unavailableCodes = map[int]string{
	// Lost connection.
	3113:  "end-of-file on communication channel",
	3114:  "not connected to ORACLE",
	3135:  "connection lost contact",
	12537: "TNS connection closed",
	12547: "TNS lost contact",
	// At connect time.
	12541: "TNS no listener",
	12514: "listener does not know of the service",
	12170: "TNS connect timeout",
	// Instance and session state.
	codeListenerBlocked: "instances are blocking new connections",
	codeStartingUp:      "initialization or shutdown in progress",
	codeNotAvailable:    "ORACLE not available",
	codeShuttingDown:    "shutdown in progress",
	codeNotLoggedOn:     "not logged on",
	codeSessionKilled:   "session killed",
	codeCallTimeout:     "call timed out",
	// Concurrency: retrying the whole batch re-evaluates it under the rules.
	codeUniqueViolation: "a concurrent writer inserted the same key",
	codeDeadlock:        "deadlock with a concurrent writer",
	codeResourceBusy:    "resource busy",
	codeSerialize:       "cannot serialize access",
	codeSnapshotTooOld:  "snapshot too old",
}

// coder is the error interface godror's *OraErr implements; matching on it
// (not on the concrete type, which has no exported constructor) lets tests
// classify errors without a database.
type coder interface{ Code() int }

// oraCode returns the ORA code of err, 0 if it has none.
func oraCode(err error) int {
	var c coder
	if errors.As(err, &c) {
		return c.Code()
	}
	return 0
}

// missingClient reports whether err says the Oracle Client library could
// not be loaded. ODPI-C reports it as DPI-1047 with ORA code 0, so only the
// text tells.
func missingClient(err error) bool { return strings.Contains(err.Error(), "DPI-1047") }

// classify wraps err with context and gives it an events code, mapping
// driver errors once, by ORA code: lost connections, unreachable listeners,
// call timeouts, deadlocks and concurrent inserts are Unavailable (the whole
// call may be retried); a missing table is Unavailable with a message that
// says the schema is missing (a writer waits for a DBA instead of
// dead-lettering every event); a missing Oracle Client gets a message that
// says what to install. Anything else keeps no code (Internal).
func classify(prefix, op string, err error) error {
	if err == nil {
		return nil
	}
	if events.ErrorCode(err) != events.Internal || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("oracle %s: %w", op, err)
	}
	if missingClient(err) {
		return fmt.Errorf("oracle %s: cannot load the Oracle Client library (DPI-1047): install Oracle Instant Client "+
			"21 or later (23.x recommended) and put its directory on the library path "+
			"(LD_LIBRARY_PATH=<instant client dir>, or ldconfig) before starting: %w", op, err)
	}
	code := oraCode(err)
	switch {
	case code == codeTableMissing:
		return events.Errorf(events.Unavailable, "oracle %s: the cairn schema for table prefix %q is missing (ORA-00942): "+
			"apply oracle/schema.sql, or start a writer without --oracle-no-ddl to create it: %w", op, prefix, err)
	case unavailableCodes[code] != "":
		return events.Errorf(events.Unavailable, "oracle %s: %s (ORA-%05d): %w", op, unavailableCodes[code], code, err)
	case errors.Is(err, driver.ErrBadConn), strings.Contains(err.Error(), "DPI-1010"), strings.Contains(err.Error(), "DPI-1080"):
		// DPI-1010: not connected; DPI-1080: connection closed by the server.
		return events.Errorf(events.Unavailable, "oracle %s: lost connection: %w", op, err)
	}
	return fmt.Errorf("oracle %s: %w", op, err)
}

// classify is classify for the store's prefix.
func (s *DB) classify(op string, err error) error { return classify(s.prefix, op, err) }
