// Package broker is cairn's JetStream plumbing, shared by the agent, the
// writer and the query service: connecting (with production auth and TLS
// options), an embedded nats-server for the no-setup default and for tests,
// the event and dead-letter streams, publishing with per-thread order and
// retries under the same message id, and the read-your-writes position of a
// writer's durable consumer.
package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/events"
)

// Defaults.
const (
	// DefaultDuplicates is the stream's deduplication window.
	DefaultDuplicates = 2 * time.Minute
	// DefaultMaxPayload is the broker message limit cairn configures and
	// expects: above events.DefaultMaxEventBytes, so that an event over
	// cairn's maximum but under the broker's reaches the writer and is
	// dead-lettered with a reason instead of vanishing at publish.
	DefaultMaxPayload = 10 << 20
)

// StreamConfig describes the event stream and its dead-letter stream.
type StreamConfig struct {
	// Root is the subject root; default events.DefaultRoot.
	Root string
	// Replicas is the stream replication factor; default 1.
	Replicas int
	// MaxAge and MaxBytes bound the stream (0 = unbounded). Events removed
	// by these limits can no longer be replayed.
	MaxAge   time.Duration
	MaxBytes int64
	// Duplicates is the deduplication window; default DefaultDuplicates.
	Duplicates time.Duration
}

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Root == "" {
		c.Root = events.DefaultRoot
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Duplicates <= 0 {
		c.Duplicates = DefaultDuplicates
	}
	return c
}

// StreamName returns the name of the event stream of a subject root.
func StreamName(root string) string {
	return strings.ToUpper(strings.ReplaceAll(root, "-", "_"))
}

// DLQStreamName returns the name of the dead-letter stream of a root.
func DLQStreamName(root string) string { return StreamName(root) + "_DLQ" }

// DLQSubject returns the dead-letter subject for an event subject: the
// event subject with its root token replaced by <root>_dlq.
func DLQSubject(root, subject string) string {
	return root + "_dlq" + strings.TrimPrefix(subject, root)
}

// EnsureStreams creates the event stream and the dead-letter stream if
// they are missing, and returns the event stream. Streams that exist are
// left as they are (an operator may have tuned them); two processes
// creating them at once are fine. Both use Limits retention and file
// storage: events stay for replay and audit after they are acknowledged.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	cfg = cfg.withDefaults()
	if !events.ValidName(cfg.Root) {
		return nil, events.Errorf(events.Invalid, "subject root %q: want 1-64 of A-Z a-z 0-9 _ -", cfg.Root)
	}
	maxBytes := cfg.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	st, err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        StreamName(cfg.Root),
		Description: "cairn events: checkpoints, pending writes, thread deletes and prunes",
		Subjects:    []string{cfg.Root + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    maxBytes,
		Duplicates:  cfg.Duplicates,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return nil, err
	}
	if _, err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        DLQStreamName(cfg.Root),
		Description: "cairn dead letters: events a writer could not project, with the reason",
		Subjects:    []string{cfg.Root + "_dlq.>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.Duplicates,
	}); err != nil {
		return nil, err
	}
	return st, nil
}

func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	for attempt := 0; ; attempt++ {
		st, err := js.Stream(ctx, cfg.Name)
		if err == nil {
			return st, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, classify(fmt.Errorf("look up stream %s: %w", cfg.Name, err))
		}
		st, err = js.CreateStream(ctx, cfg)
		if err == nil {
			return st, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) || attempt > 0 {
			return nil, classify(fmt.Errorf("create stream %s: %w", cfg.Name, err))
		}
		// Another process created it meanwhile: look it up again.
	}
}

// ConnConfig configures Connect. Only URL is required.
type ConnConfig struct {
	URL  string
	Name string // client name shown by the server
	// Authentication: at most one of user/password, token, creds file.
	User, Password string
	Token          string
	CredsFile      string // nkeys/JWT credentials
	// TLS: a CA to verify the server, and optionally a client certificate.
	CAFile, CertFile, KeyFile string
}

// Connect connects to NATS. Once connected the client reconnects forever;
// publishers and consumers ride out broker restarts.
func Connect(ctx context.Context, cfg ConnConfig) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(16 << 20),
		nats.Timeout(5 * time.Second),
	}
	switch {
	case cfg.CredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.CAFile))
	}
	if cfg.CertFile != "" || cfg.KeyFile != "" {
		opts = append(opts, nats.ClientCert(cfg.CertFile, cfg.KeyFile))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, events.Errorf(events.Unavailable, "connect to NATS at %s: %w", cfg.URL, err)
	}
	return nc, nil
}

// classify gives broker errors an events code: connection trouble and
// timeouts are Unavailable.
func classify(err error) error {
	if err == nil || events.ErrorCode(err) != events.Internal {
		return err
	}
	if retryable(err) {
		return events.Errorf(events.Unavailable, "%w", err)
	}
	return err
}

// retryable reports errors that a retry of the same request can cure.
func retryable(err error) bool {
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, nats.ErrSlowConsumer) || isClusterUnavailable(err)
}

// isClusterUnavailable matches JetStream API errors raised while a cluster
// elects a leader or a stream has lost quorum (HTTP-like code 503).
func isClusterUnavailable(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.Code == 503
}
