package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/secret"
	"github.com/falco-scorer/falco-scorer/sinks"
)

// Keys falco-scorer adds to a forwarded event's output_fields.
const (
	FieldVerdict       = "scorer.verdict"
	FieldBand          = "scorer.band"
	FieldScore         = "scorer.score"
	FieldThreshold     = "scorer.threshold"
	FieldRatio         = "scorer.ratio"
	FieldAlertID       = "scorer.alert_id"
	FieldImage         = "scorer.image"
	FieldKind          = "scorer.kind"
	FieldFalcoPriority = "scorer.falco_priority"
	FieldBaseline      = "scorer.baseline"
	FieldTreeRootPID   = "scorer.tree_root_pid"
	FieldTreeRoot      = "scorer.tree_root"
)

// Sink POSTs alerts as Falco JSON.
type Sink struct {
	cfg    Config
	log    zerolog.Logger
	client *http.Client
	url    secret.Secret
	token  secret.Secret
}

// New resolves the secrets and returns the sink.
func New(cfg Config, log zerolog.Logger) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, err := cfg.URLRef().Resolve()
	if err != nil {
		return nil, err
	}
	if err := sinks.CheckHTTPURL(u.Value()); err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	tok, err := cfg.BearerTokenRef().Resolve()
	if err != nil {
		return nil, err
	}
	return &Sink{
		cfg: cfg, url: u, token: tok,
		log:    log.With().Str("component", "sinks.webhook").Logger(),
		client: &http.Client{Timeout: cfg.Timeout},
	}, nil
}

// Name returns "webhook".
func (s *Sink) Name() string { return "webhook" }

// Close releases idle connections.
func (s *Sink) Close(context.Context) error {
	s.client.CloseIdleConnections()
	return nil
}

// Send POSTs one request per alert, in order, as falcosidekick expects.
// Outcomes: all delivered; the alerts from the first failure on, failed
// one by one (the whole batch when the first alert fails); 400, 413, 415
// and 422 (the receiver rejects this alert) are permanent; every other
// answer is transient: 429 (with Retry-After when given), 5xx, network
// errors, and 401, 403, 404, 405, 408, 410, 425, which concern every alert
// and are fixed on the receiver's side or in the configuration (see
// statusError).
func (s *Sink) Send(ctx context.Context, batch []sinks.Item) sinks.Result {
	for i, it := range batch {
		if f := s.post(ctx, it.Alert); f != nil {
			if i == 0 {
				return sinks.Failed(len(batch), f)
			}
			r := sinks.Delivered(len(batch))
			for j := i; j < len(batch); j++ {
				r.Fail(f, j)
			}
			return r
		}
	}
	return sinks.Delivered(len(batch))
}

// post sends one alert and returns nil once the receiver took it, else why
// not.
func (s *Sink) post(ctx context.Context, a *scorer.Alert) *sinks.Failure {
	body, err := FalcoJSON(a)
	if err != nil {
		return sinks.Rejected("encode", fmt.Errorf("encode alert %s: %w", a.ID, err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url.Value(), bytes.NewReader(body))
	if err != nil {
		return sinks.Rejected("", s.redact(fmt.Errorf("build request: %w", err)))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "falco-scorer")
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	if !s.token.IsZero() {
		req.Header.Set("Authorization", "Bearer "+s.token.Value())
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return sinks.Transient("unavailable", s.redact(fmt.Errorf("post alert: %w", err)))
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	detail := func() string {
		return sinks.RedactText(strings.TrimSpace(string(rb)), s.url.Value(), s.token.Value())
	}
	code := resp.StatusCode
	switch class := sinks.ClassifyHTTP(code); class {
	case sinks.HTTPDelivered:
		return nil
	case sinks.HTTPRateLimited:
		f := class.Failure(fmt.Errorf("webhook answered 429: %s", detail()))
		if d, ok := sinks.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			f.After(d)
		}
		return f
	case sinks.HTTPServer:
		return class.Failure(fmt.Errorf("webhook answered %d: %s", code, detail()))
	case sinks.HTTPOther:
		return class.Failure(fmt.Errorf("webhook answered %d", code))
	default:
		return statusError(code, class, detail())
	}
}

// statusError words a 4xx answer other than 429 (class, from
// sinks.ClassifyHTTP, decides whether it is permanent). Only the answers
// that depend on the request body are permanent (the dispatcher
// dead-letters the alert); auth, config and timeout answers concern every
// alert, so they stay retryable until delivery.max_retry_time and the alerts
// go out once the receiver or the configuration is fixed. detail is the
// answer's body, already redacted.
func statusError(code int, class sinks.HTTPClass, detail string) *sinks.Failure {
	what := fmt.Sprintf("webhook answered %d", code)
	if detail != "" {
		what += ": " + detail
	}
	switch class {
	case sinks.HTTPPayload:
		what += " (the receiver rejected this alert)"
	case sinks.HTTPAuth:
		what += " (check bearer_token and headers)"
	case sinks.HTTPConfig:
		what += " (no receiver at url: check url, or the receiver is redeploying)"
	}
	return class.Failure(errors.New(what))
}

func (s *Sink) redact(err error) error { return sinks.Redact(err, s.url.Value(), s.token.Value()) }

// FalcoJSON renders a as the Falco event it came from, with priority set to
// the alert's (escalated) priority and the scorer's view added under
// scorer.* keys in output_fields: categorical values as strings (falco-talon
// matches output_fields by equality), numbers as JSON numbers. Every other
// key of the original event is kept as it was, but for bytes that are not
// UTF-8 and escapes of unpaired surrogates, which become U+FFFD
// (scorer.ValidUTF8JSON): encoding/json passes the values it keeps raw
// through unchecked, and receivers may parse strictly.
func FalcoJSON(a *scorer.Alert) ([]byte, error) {
	raw := scorer.ValidUTF8JSON(a.Event.Raw)
	if len(raw) == 0 {
		var err error
		if raw, err = a.Event.EncodeJSON(); err != nil {
			return nil, err
		}
	}
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("decode falco event: %w", err)
	}
	if ev == nil {
		return nil, errors.New("decode falco event: not an object")
	}
	fields := map[string]json.RawMessage{}
	if of, ok := ev["output_fields"]; ok && string(of) != "null" {
		if err := json.Unmarshal(of, &fields); err != nil {
			return nil, fmt.Errorf("decode output_fields: %w", err)
		}
	}
	str := func(s string) json.RawMessage { b, _ := json.Marshal(s); return b }
	num := func(f float64) json.RawMessage {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return json.RawMessage("null")
		}
		return json.RawMessage(strconv.FormatFloat(f, 'g', -1, 64))
	}
	fields[FieldVerdict] = str(a.Score.Verdict)
	fields[FieldBand] = str(a.Score.Band)
	if a.Score.HasValue() { // an alert without a score has no scorer.score, not 0
		fields[FieldScore] = num(a.Score.Value)
		fields[FieldThreshold] = num(a.Score.Threshold)
		fields[FieldRatio] = num(a.Score.Ratio)
	}
	fields[FieldAlertID] = str(a.ID)
	fields[FieldImage] = str(a.Subject.Image)
	fields[FieldKind] = str(a.Kind)
	fields[FieldFalcoPriority] = str(a.Event.Priority.String())
	if a.Baseline.State != "" {
		fields[FieldBaseline] = str(a.Baseline.State)
	}
	if a.Subject.TreeRootPID != 0 { // an alert its process tree raised: the root a responder acts on
		fields[FieldTreeRootPID] = json.RawMessage(strconv.FormatInt(a.Subject.TreeRootPID, 10))
		fields[FieldTreeRoot] = str(a.Subject.TreeRoot)
	}
	of, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	ev["output_fields"] = of
	ev["priority"] = str(a.Priority.String())
	return json.Marshal(ev)
}

var _ sinks.Sink = (*Sink)(nil)
