package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// stmtCache keeps the statements of transactions prepared across them:
// parsing a multi-row statement costs about as much as running it. A
// statement first seen in a transaction is prepared for that transaction
// only and noted; the next Update prepares the noted ones on the database
// before it begins its transaction (a transaction holds its connection,
// and an in-memory database has only one), and from then on transactions
// take them from here. database/sql prepares each once per connection.
type stmtCache struct {
	mu      sync.Mutex
	stmts   map[string]*sql.Stmt
	pending map[string]bool
}

// get returns the prepared statement of query, or nil after noting query
// to be prepared by the next fill.
func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.stmts[query]; st != nil {
		return st
	}
	if c.pending == nil {
		c.pending = make(map[string]bool)
	}
	c.pending[query] = true
	return nil
}

// fill prepares the noted statements on db. It must not be called inside a
// transaction of db. A statement that fails to prepare stays noted: the
// transaction that uses it prepares it again and reports the error.
func (c *stmtCache) fill(ctx context.Context, db *sql.DB) {
	c.mu.Lock()
	var queries []string
	for q := range c.pending {
		queries = append(queries, q)
	}
	c.mu.Unlock()
	for _, q := range queries {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if c.stmts == nil {
			c.stmts = make(map[string]*sql.Stmt)
		}
		if c.stmts[q] == nil {
			c.stmts[q] = st
			st = nil
		}
		delete(c.pending, q)
		c.mu.Unlock()
		if st != nil {
			st.Close() // another Update prepared it meanwhile
		}
	}
}

// needsFill reports whether statements are waiting to be prepared.
func (c *stmtCache) needsFill() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) > 0
}

// close closes every prepared statement.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.stmts {
		errs = append(errs, st.Close())
	}
	c.stmts, c.pending = nil, nil
	return errors.Join(errs...)
}

// prepare returns query (with the prefix expanded) prepared for t's
// transaction; the caller closes it.
func (t *txn) prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	query = t.s.sql(query)
	if st := t.s.stmts.get(query); st != nil {
		return t.tx.StmtContext(ctx, st), nil
	}
	return t.tx.PrepareContext(ctx, query)
}
