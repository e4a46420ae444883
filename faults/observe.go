package faults

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/writer"
)

// WaitProjected waits until the durable consumer of the root's event stream
// has acknowledged or terminated every message in the stream, calling alive
// (which should fail tb if a process it needs has died) between polls. It
// fails tb after timeout. Errors asking the broker (a node restarting, a
// leader election) are retried until then.
func WaitProjected(ctx context.Context, tb testing.TB, js jetstream.JetStream, root, durable string, timeout time.Duration, alive func(testing.TB)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	state := "no answer from the broker yet"
	for {
		done, s, err := projected(ctx, js, root, durable)
		if err == nil && done {
			return
		}
		if err != nil {
			state = err.Error()
		} else {
			state = s
		}
		if alive != nil {
			alive(tb)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			tb.Fatalf("events not all projected after %v: %s", timeout, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func projected(ctx context.Context, js jetstream.JetStream, root, durable string) (bool, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, broker.StreamName(root))
	if err != nil {
		return false, "", fmt.Errorf("stream: %w", err)
	}
	sinfo, err := st.Info(ctx)
	if err != nil {
		return false, "", fmt.Errorf("stream info: %w", err)
	}
	cons, err := st.Consumer(ctx, durable)
	if err != nil {
		return false, "", fmt.Errorf("consumer %s: %w", durable, err)
	}
	cinfo, err := cons.Info(ctx)
	if err != nil {
		return false, "", fmt.Errorf("consumer info: %w", err)
	}
	last := sinfo.State.LastSeq
	done := cinfo.AckFloor.Stream >= last && cinfo.NumAckPending == 0 && cinfo.NumPending == 0
	return done, fmt.Sprintf("stream last seq %d, ack floor %d, %d pending, %d unacknowledged", last, cinfo.AckFloor.Stream, cinfo.NumPending, cinfo.NumAckPending), nil
}

// StreamMsg is one stored message.
type StreamMsg struct {
	Seq     uint64
	Subject string
	Header  nats.Header
	Data    []byte
}

// ReadStream reads every message of a stream, in order. Fetches that fail
// (a cluster moving a leader) are retried for up to a minute; the ordered
// consumer resumes after the last message read.
func ReadStream(ctx context.Context, js jetstream.JetStream, stream string) ([]StreamMsg, error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s info: %w", stream, err)
	}
	if info.State.Msgs == 0 {
		return nil, nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("stream %s: ordered consumer: %w", stream, err)
	}
	var out []StreamMsg
	deadline := time.Now().Add(time.Minute)
	for uint64(len(out)) < info.State.Msgs {
		batch, err := cons.Fetch(int(min(info.State.Msgs-uint64(len(out)), 500)), jetstream.FetchMaxWait(5*time.Second))
		if err == nil {
			for m := range batch.Messages() {
				md, merr := m.Metadata()
				if merr != nil {
					return nil, fmt.Errorf("read %s: %w", stream, merr)
				}
				out = append(out, StreamMsg{Seq: md.Sequence.Stream, Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
			}
			err = batch.Error()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("read %s: %d of %d messages after a minute (%v)", stream, len(out), info.State.Msgs, err)
		}
	}
	return out, nil
}

// ReadDeadLetters reads the root's dead-letter stream.
func ReadDeadLetters(ctx context.Context, js jetstream.JetStream, root string) ([]DeadLetter, error) {
	msgs, err := ReadStream(ctx, js, broker.DLQStreamName(root))
	if err != nil {
		return nil, err
	}
	out := make([]DeadLetter, len(msgs))
	for i, m := range msgs {
		seq, err := strconv.ParseUint(m.Header.Get(writer.HeaderStreamSeq), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("dead letter %d: %s header: %w", m.Seq, writer.HeaderStreamSeq, err)
		}
		out[i] = DeadLetter{StreamSeq: seq, Subject: m.Header.Get(writer.HeaderSubject), Reason: m.Header.Get(writer.HeaderReason)}
	}
	return out, nil
}
