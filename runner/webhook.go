package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cairn-io/cairn/agent"
)

// DefaultWebhookTimeout bounds one status webhook request.
const DefaultWebhookTimeout = 10 * time.Second

// StatusWebhook is an agent.StatusPage that POSTs each update as JSON,
// {"key":..,"audience":..,"message":..}, to a URL, with the key also in the
// Idempotency-Key header so that a receiver can drop a repeat. Any 2xx
// answer is success; its body, trimmed to 200 bytes, is the receipt the
// model sees. It does not retry: a failure is reported to the model.
type StatusWebhook struct {
	URL string
	// Client sends the requests; default one with DefaultWebhookTimeout.
	Client *http.Client
}

var _ agent.StatusPage = StatusWebhook{}

// Post implements agent.StatusPage.
func (w StatusWebhook) Post(ctx context.Context, u agent.StatusUpdate) (string, error) {
	body, err := json.Marshal(struct {
		Key      string `json:"key"`
		Audience string `json:"audience"`
		Message  string `json:"message"`
	}{u.Key, u.Audience, u.Message})
	if err != nil {
		return "", fmt.Errorf("encode status update: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("status webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", u.Key)
	hc := w.Client
	if hc == nil {
		hc = &http.Client{Timeout: DefaultWebhookTimeout}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("status webhook: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	text := strings.TrimSpace(string(b))
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("status webhook answered %s: %s", resp.Status, text)
	}
	if text == "" {
		text = resp.Status
	}
	return fmt.Sprintf("posted to %s: %s", u.Audience, text), nil
}
