package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cairn-io/cairn/projector"
)

// RandomRecords returns n records over a few threads, namespaces, keys and
// contents, so that forks, duplicates, conflicts, out-of-order parents,
// competing write sets, deletes and prunes all occur. Seqs are 1..n.
func RandomRecords(rng *rand.Rand, n int) []projector.Record {
	threads := []string{"alpha", "beta.with.dots", "gamma ✓"}
	nss := []string{"", "sub:1"}
	recs := make([]projector.Record, 0, n)
	for seq := uint64(1); seq <= uint64(n); seq++ {
		th := threads[rng.IntN(len(threads))]
		ns := nss[rng.IntN(len(nss))]
		id := fmt.Sprintf("v%d", rng.IntN(8))
		switch p := rng.IntN(100); {
		case p < 50:
			// Mostly the id's usual parent and one of two contents, so that
			// duplicates are as common as conflicts; sometimes a fork.
			parent := ""
			if n := int(id[1] - '0'); n > 0 {
				parent = fmt.Sprintf("v%d", n-1)
			}
			if rng.IntN(6) == 0 {
				parent = fmt.Sprintf("v%d", rng.IntN(8))
			}
			content := rng.IntN(2)
			state := fmt.Sprintf(`{"content":%d,"big":123456789012345678901234567890}`, content)
			recs = append(recs, Put(seq, th, ns, id, parent, state, fmt.Sprintf(`{"step":%d}`, content)))
		case p < 88:
			var ws []string
			for i := range rng.IntN(4) {
				ws = append(ws, fmt.Sprintf("ch%d=%d", i, rng.IntN(3)))
			}
			recs = append(recs, PutWrites(seq, th, ns, id, fmt.Sprintf("task%d", rng.IntN(3)), ws...))
		case p < 96:
			recs = append(recs, Prune(seq, th, uint64(rng.IntN(int(seq)+5))+1))
		default:
			recs = append(recs, Delete(seq, th))
		}
	}
	return recs
}

// Reshuffle returns recs permuted, with about a fifth repeated (as
// redeliveries are), cut into batches of random sizes.
func Reshuffle(rng *rand.Rand, recs []projector.Record) [][]projector.Record {
	all := append([]projector.Record(nil), recs...)
	for range len(recs) / 5 {
		all = append(all, recs[rng.IntN(len(recs))])
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	var batches [][]projector.Record
	for len(all) > 0 {
		n := min(len(all), 1+rng.IntN(40))
		batches = append(batches, all[:n])
		all = all[n:]
	}
	return batches
}

func testOrderFreeProperty(t *testing.T, b Backend) {
	rounds, size := 6, 300
	if testing.Short() {
		rounds, size = 3, 120
	}
	for round := range rounds {
		seed := uint64(round) + 1
		rng := rand.New(rand.NewPCG(seed, 42))
		recs := RandomRecords(rng, size)
		var first projector.Dump
		for attempt := range 3 {
			s := b.Fresh(t)
			for _, batch := range Reshuffle(rng, recs) {
				MustApply(t, s, batch...)
			}
			d := MustDump(t, s)
			if attempt == 0 {
				first = d
				AssertExpected(t, s, recs)
				continue
			}
			AssertSameDump(t, d, first)
		}
	}
}

func testConcurrentWriters(t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(7, 7))
	recs := RandomRecords(rng, 400)
	s1 := b.Fresh(t)
	s2 := s1
	if b.Again != nil {
		s2 = b.Again(t, s1)
	}
	// Both writers see every record (overlapping batches), in different orders.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i, s := range []projector.Store{s1, s2} {
		batches := Reshuffle(rand.New(rand.NewPCG(uint64(i), 99)), recs)
		wg.Go(func() {
			p := projector.New(s)
			for _, batch := range batches {
				for {
					res, err := p.Apply(context.Background(), batch)
					if err != nil {
						if isRetryable(err) {
							continue // a deadlock or serialisation failure: retry, as the writer does
						}
						errs <- err
						return
					}
					for _, e := range res.Errors {
						if e != nil {
							errs <- e
							return
						}
					}
					break
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent apply: %v", err)
	}
	AssertExpected(t, s1, recs)
	AssertExpected(t, s2, recs)
}
