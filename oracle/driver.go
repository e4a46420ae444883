//go:build cgo

package oracle

import (
	"cmp"
	"database/sql"
	"strings"

	"github.com/godror/godror"

	"github.com/cairn-io/cairn/events"
)

// openDB opens the session pool through godror, which needs cgo to build
// and Oracle Instant Client at run time (loaded on first use, so a missing
// client shows at the first ping as DPI-1047).
func openDB(cfg Config) (*sql.DB, error) {
	params, err := connectionParams(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(godror.NewConnector(params))
	// database/sql never holds more sessions than the OCI pool has.
	db.SetMaxOpenConns(params.MaxSessions)
	db.SetMaxIdleConns(params.MaxSessions)
	return db, nil
}

// connectionParams turns cfg into godror's parameters: the OCI session pool
// switched on (godror's default is a standalone connection per session),
// sized by cfg, and sessions that sort and compare by bytes.
func connectionParams(cfg Config) (godror.ConnectionParams, error) {
	if cfg.DSN == "" {
		return godror.ConnectionParams{}, events.Errorf(events.Invalid, "oracle: no DSN (connect string or tnsnames alias)")
	}
	p, err := parseDSN(cfg.DSN)
	if err != nil {
		return p, events.Errorf(events.Invalid, "oracle: DSN: %v", err)
	}
	if cfg.User != "" {
		p.Username = cfg.User
	}
	if cfg.Password != "" {
		p.Password = godror.NewPassword(cfg.Password)
	}
	if cfg.WalletDir != "" {
		p.ConfigDir = cfg.WalletDir
	}
	p.StandaloneConnection = godror.Bool(false)
	p.MinSessions = cmp.Or(cfg.PoolMinSessions, DefaultPoolMinSessions)
	p.MaxSessions = cmp.Or(cfg.PoolMaxSessions, DefaultPoolMaxSessions)
	p.SessionIncrement = cmp.Or(cfg.PoolIncrement, DefaultPoolIncrement)
	p.WaitTimeout = DefaultPoolWaitTimeout
	switch {
	case p.MinSessions < 0 || p.SessionIncrement < 0:
		return p, events.Errorf(events.Invalid, "oracle: pool min sessions %d, increment %d: want 0 or more", p.MinSessions, p.SessionIncrement)
	case p.MaxSessions < 2:
		return p, events.Errorf(events.Invalid, "oracle: pool max sessions %d: want at least 2", p.MaxSessions)
	case p.MinSessions > p.MaxSessions:
		return p, events.Errorf(events.Invalid, "oracle: pool min sessions %d above max %d", p.MinSessions, p.MaxSessions)
	}
	// Ids order by bytes in every cairn store, which is what BINARY gives
	// in an AL32UTF8 database. A pooled session keeps these settings, so
	// they are set on new sessions only.
	p.SetSessionParamOnInit("NLS_SORT", "BINARY")
	p.SetSessionParamOnInit("NLS_COMP", "BINARY")
	p.InitOnNewConn = true
	return p, nil
}

// parseDSN reads a DSN: a full godror data source name (with
// connectString=, an oracle:// URL, or user/password@connect string) is
// parsed as godror does; anything else is the connect string itself.
// (godror alone would read host:1521/SERVICE as user "host:1521" with
// password "SERVICE".)
func parseDSN(dsn string) (godror.ConnectionParams, error) {
	if strings.Contains(dsn, "connectString=") || strings.HasPrefix(dsn, "oracle://") || strings.Contains(dsn, "@") {
		return godror.ParseDSN(dsn)
	}
	p, err := godror.ParseDSN("")
	p.ConnectString = strings.TrimSpace(dsn)
	return p, err
}

// Describe names the connection for logs, without secrets.
func (c Config) Describe() string {
	p, err := parseDSN(c.DSN)
	if err != nil {
		return "(unparsable DSN)"
	}
	user := c.User
	if user == "" {
		user = p.Username
	}
	out := user + "@" + p.ConnectString
	if c.WalletDir != "" {
		out += " wallet " + c.WalletDir
	}
	return out
}

// clobColumn binds texts as temporary CLOBs.
func clobColumn(texts []string) any {
	lobs := make([]godror.Lob, len(texts))
	for i, t := range texts {
		lobs[i] = godror.Lob{IsClob: true, Reader: strings.NewReader(t)}
	}
	return lobs
}
