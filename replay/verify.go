package replay

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// Tables names the projected tables in the order Counts reports them.
var Tables = []string{"threads", "checkpoints", "conflicts", "duplicates", "write_sets", "writes", "live"}

// Counts returns the row count of each table of d, in the order of Tables.
func Counts(d projector.Dump) []int {
	return []int{len(d.Threads), len(d.Checkpoints), len(d.Conflicts), len(d.Duplicates), len(d.WriteSets), len(d.Writes), len(d.Live)}
}

// Comparison is the result of comparing two projections.
type Comparison struct {
	// ChecksumA and ChecksumB are canonical checksums (projector.Dump.Checksum).
	ChecksumA, ChecksumB string
	// CountsA and CountsB are the row counts, in the order of Tables.
	CountsA, CountsB []int
	// Identical: every row of every table is equal, payloads byte for byte.
	Identical bool
	// Diff holds the first differing rows, "- " only in A, "+ " only in B.
	Diff []string
}

// Compare compares two dumps and keeps up to maxDiff differing rows.
func Compare(a, b projector.Dump, maxDiff int) Comparison {
	c := Comparison{
		ChecksumA: a.Checksum(), ChecksumB: b.Checksum(),
		CountsA: Counts(a), CountsB: Counts(b),
	}
	c.Identical = c.ChecksumA == c.ChecksumB
	if !c.Identical {
		c.Diff = projector.DiffLines(a, b, maxDiff)
	}
	return c
}

// StreamInfo describes the events a stream dump was computed from.
type StreamInfo struct {
	// FirstSeq above 1 means earlier events were removed by the stream's
	// limits; a projection that saw them may differ.
	FirstSeq, LastSeq uint64
	// Events of the fleet read; Invalid ones (that do not decode) are left
	// out, as writers dead-letter them.
	Events, Invalid int64
}

// StreamDump reads every event of the fleet in the stream (up to its last
// sequence when called) and computes, directly from the projection rules
// (projector.Expect), the tables a projection of them must hold. It holds
// the fleet's events in memory.
func StreamDump(ctx context.Context, js jetstream.JetStream, root, fleet string, maxEventBytes int) (projector.Dump, StreamInfo, error) {
	var si StreamInfo
	if root == "" {
		root = events.DefaultRoot
	}
	if fleet == "" {
		fleet = events.DefaultFleet
	}
	st, err := js.Stream(ctx, broker.StreamName(root))
	if err != nil {
		return projector.Dump{}, si, fmt.Errorf("event stream %s: %w", broker.StreamName(root), err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return projector.Dump{}, si, fmt.Errorf("stream info: %w", err)
	}
	si.FirstSeq, si.LastSeq = info.State.FirstSeq, info.State.LastSeq
	filter := events.FleetFilter(root, fleet)
	var recs []projector.Record
	if _, err := st.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(filter)); errors.Is(err, jetstream.ErrMsgNotFound) {
		d, err := projector.Expect(nil)
		return d, si, err
	} else if err != nil {
		return projector.Dump{}, si, fmt.Errorf("first event: %w", err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return projector.Dump{}, si, fmt.Errorf("ordered consumer: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return projector.Dump{}, si, fmt.Errorf("read stream: %w", err)
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return projector.Dump{}, si, fmt.Errorf("read stream: %w", err)
		}
		md, err := m.Metadata()
		if err != nil {
			return projector.Dump{}, si, fmt.Errorf("message metadata: %w", err)
		}
		if md.Sequence.Stream > si.LastSeq {
			break
		}
		si.Events++
		e, err := events.Decode(m.Data(), maxEventBytes)
		if err == nil {
			err = events.CheckSubject(root, m.Subject(), e)
		}
		if err != nil {
			si.Invalid++
		} else {
			recs = append(recs, projector.Record{Seq: md.Sequence.Stream, Event: e})
		}
		if md.Sequence.Stream >= si.LastSeq || md.NumPending == 0 {
			break
		}
	}
	d, err := projector.Expect(recs)
	return d, si, err
}
