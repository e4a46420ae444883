package projector

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// DefaultMaxBackoff is RetryPolicy's default longest wait between attempts.
const DefaultMaxBackoff = 10 * time.Second

// RetryPolicy says how ApplyRetrying waits while the store is unavailable.
type RetryPolicy struct {
	// MaxBackoff caps the wait between attempts, which starts at 100 ms and
	// grows exponentially; default DefaultMaxBackoff.
	MaxBackoff time.Duration
	// OnFailure, if set, is called after each failed attempt with the
	// number of failures so far and the error: for counting and for
	// bounded logging.
	OnFailure func(failures int, err error)
}

// ApplyRetrying applies recs like Apply and, while the store is
// unavailable, retries the whole batch with exponential backoff until it
// succeeds or ctx ends. Nothing of a failed attempt was committed, so a
// retry is safe. It also returns how many attempts failed.
func (p *Projector) ApplyRetrying(ctx context.Context, recs []Record, pol RetryPolicy) (Result, int, error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = pol.MaxBackoff
	if b.MaxInterval <= 0 {
		b.MaxInterval = DefaultMaxBackoff
	}
	b.MaxElapsedTime = 0
	var res Result
	failures := 0
	err := backoff.Retry(func() error {
		var err error
		res, err = p.Apply(ctx, recs)
		if err == nil || ctx.Err() != nil {
			// Apply returns only Unavailable errors and ctx's.
			return backoff.Permanent(err)
		}
		failures++
		if pol.OnFailure != nil {
			pol.OnFailure(failures, err)
		}
		return err
	}, backoff.WithContext(b, ctx))
	if err != nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return res, failures, err
}
