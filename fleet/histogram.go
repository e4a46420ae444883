package fleet

import (
	"math"
	"sync"
	"time"
)

// Histogram records durations in fixed logarithmic buckets (about 2%
// wide, from 1µs to over an hour), so that percentiles of millions of
// samples cost a few kilobytes. It is safe for concurrent use.
type Histogram struct {
	mu      sync.Mutex
	buckets [histBuckets]int64
	count   int64
	max     time.Duration
}

const (
	histPerDoubling = 32
	histBuckets     = 32 * histPerDoubling // 2^32 µs ≈ 71 minutes
)

func bucketOf(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	b := int(math.Log2(us) * histPerDoubling)
	return min(b, histBuckets-1)
}

// bucketUpper is the largest duration bucket b holds.
func bucketUpper(b int) time.Duration {
	return time.Duration(math.Exp2(float64(b+1)/histPerDoubling) * float64(time.Microsecond))
}

// Record adds one sample.
func (h *Histogram) Record(d time.Duration) {
	b := bucketOf(d)
	h.mu.Lock()
	h.buckets[b]++
	h.count++
	h.max = max(h.max, d)
	h.mu.Unlock()
}

// Count returns the number of samples.
func (h *Histogram) Count() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

// Max returns the largest sample.
func (h *Histogram) Max() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.max
}

// Percentile returns the duration at or below which fraction q (0 to 1)
// of the samples lie, to the bucket's precision; 0 without samples.
func (h *Histogram) Percentile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.count == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.count)))
	rank = max(rank, 1)
	var seen int64
	for b, n := range h.buckets {
		seen += n
		if seen >= rank {
			return min(bucketUpper(b), h.max)
		}
	}
	return h.max
}
