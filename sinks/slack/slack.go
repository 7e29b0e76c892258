package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/secret"
	"github.com/falco-scorer/falco-scorer/sinks"
)

// maxIncidents bounds the remembered incidents (digest and thread state).
const maxIncidents = 10000

// Sink posts alerts to Slack.
type Sink struct {
	cfg    Config
	log    zerolog.Logger
	client *http.Client
	target secret.Secret // webhook URL, or empty in bot mode
	token  secret.Secret // bot token, or empty in webhook mode
	now    func() time.Time

	mu        sync.Mutex
	next      time.Time            // earliest time of the next message
	incidents map[string]*incident // by image and rule
}

// incident is an (image, rule) that already had its full message.
type incident struct {
	opened   time.Time // wall clock of the first message: the digest window
	lastPost time.Time // wall clock of its latest message (first or digest)
	first    time.Time // event time of the first alert, for "in 5 min"
	threadTS string    // bot mode: the first message's ts
	more     int       // alerts after the first, reported so far
}

// New resolves the secrets and returns the sink.
func New(cfg Config, log zerolog.Logger) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sink{
		cfg:       cfg,
		log:       log.With().Str("component", "sinks.slack").Logger(),
		client:    &http.Client{Timeout: cfg.Timeout},
		now:       time.Now,
		incidents: map[string]*incident{},
	}
	var err error
	if cfg.hasBot() {
		if s.token, err = cfg.BotTokenRef().ResolveRequired(); err != nil {
			return nil, err
		}
		return s, nil
	}
	if s.target, err = cfg.WebhookURLRef().Resolve(); err != nil {
		return nil, err
	}
	if err := sinks.CheckHTTPURL(s.target.Value()); err != nil {
		return nil, fmt.Errorf("webhook_url: %w", err)
	}
	return s, nil
}

// Name returns "slack".
func (s *Sink) Name() string { return "slack" }

// Close releases idle connections.
func (s *Sink) Close(context.Context) error {
	s.client.CloseIdleConnections()
	return nil
}

// Pace blocks until the next message may be sent (sinks.Pacer).
func (s *Sink) Pace(ctx context.Context) error {
	s.mu.Lock()
	wait := s.next.Sub(s.now())
	s.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// slotInTime reports whether the next message slot leaves time for one post
// before ctx's deadline (the dispatcher's send timeout). A batch of many
// groups would otherwise wait past it, be cut off mid-post (a message
// possibly posted twice) and count as a failure although Slack is fine.
func (s *Sink) slotInTime(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	if !ok {
		return true
	}
	s.mu.Lock()
	wait := s.next.Sub(s.now())
	s.mu.Unlock()
	return time.Until(dl)-max(wait, 0) > s.cfg.Timeout
}

// group is the alerts of one (kind, rule, image, container) in a batch:
// only those are the same incident. Alerts of other containers of one
// image, or Falco's own alerts beside the scorer's, are separate stories.
type group struct {
	key     string
	indexes []int
}

// Send posts one message per (image, rule) in batch, each after the rate
// limit allows it and only once Slack accepted the one before. Alerts below
// MinPriority are confirmed without a message. The Result lists the alerts
// not posted, and those held for a digest. A group Slack rejects for its
// payload (a permanent Failure) does not stop the batch: the other groups
// are still posted and only the rejected group's alerts are reported, so
// the dispatcher does not split healthy groups into one message per alert.
// A transient failure (429 with its Retry-After, 5xx, network, auth or
// config answers, see httpError and apiError) stops the batch and reports
// the groups not posted, with any rejected before it.
func (s *Sink) Send(ctx context.Context, batch []sinks.Item) sinks.Result {
	var groups []*group
	byKey := map[string]*group{}
	for i, it := range batch {
		if !it.Alert.Priority.AtLeast(s.cfg.MinPriority) {
			continue
		}
		a := it.Alert
		k := a.Kind + "\x00" + a.Event.Rule + "\x00" + a.Subject.Image + "\x00" + a.Subject.ContainerID
		g := byKey[k]
		if g == nil {
			g = &group{key: k}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.indexes = append(g.indexes, i)
	}
	s.expire()
	// Follow-ups of an incident whose last message is younger than
	// digest_interval wait, unconfirmed, for one digest that counts them
	// all: a steady stream of one alert would otherwise post a digest per
	// batch (one a second).
	var h holding
	groups = slices.DeleteFunc(groups, func(g *group) bool {
		until, wait := s.digestNotDue(g.key)
		if wait {
			h.add(g, until)
		}
		return wait
	})
	var rejected []*group        // groups refused for their payload
	var rejectErr *sinks.Failure // the first such refusal
	posted := 0                  // groups Slack accepted in this Send
	for gi, g := range groups {
		// Deferring is progress only after a post went through; otherwise
		// the whole batch would come back as one transient failure.
		if posted > 0 && !s.slotInTime(ctx) {
			return s.partial(batch, append(rejected, groups[gi:]...), nil, h)
		}
		if err := s.Pace(ctx); err != nil {
			return s.partial(batch, append(rejected, groups[gi:]...), sinks.Transient("", fmt.Errorf("wait for slack rate limit: %w", err)), h)
		}
		f := s.postGroup(ctx, batch, g)
		switch {
		case f == nil:
			posted++
		case f.Permanent:
			rejected = append(rejected, g)
			if rejectErr == nil {
				rejectErr = f
			}
		default:
			// Rejected groups are retried with the rest: a Result carries
			// one cause, and marking healthy groups permanent would make
			// the dispatcher post each of their alerts alone.
			return s.partial(batch, append(rejected, groups[gi:]...), f, h)
		}
	}
	return s.partial(batch, rejected, rejectErr, h)
}

// holding is the alerts held for a later digest, and when the first one is due.
type holding struct {
	indexes []int
	until   time.Time
}

func (h *holding) add(g *group, until time.Time) {
	h.indexes = append(h.indexes, g.indexes...)
	if h.until.IsZero() || until.Before(h.until) {
		h.until = until
	}
}

// digestNotDue reports whether key's incident posted less than
// digest_interval ago, and when its next digest is due.
func (s *Sink) digestNotDue(key string) (due time.Time, wait bool) {
	if s.cfg.DigestInterval <= 0 {
		return time.Time{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inc := s.incidents[key]
	if inc == nil {
		return time.Time{}, false
	}
	due = inc.lastPost.Add(s.cfg.DigestInterval)
	if end := inc.opened.Add(s.cfg.DigestWindow); end.Before(due) {
		due = end // the incident is forgotten then: its follow-ups go out at once
	}
	return due, s.now().Before(due)
}

// partial reports the alerts of the groups not posted (rest), which failed
// with f, or were deferred when f is nil, and those held.
func (s *Sink) partial(batch []sinks.Item, rest []*group, f *sinks.Failure, h holding) sinks.Result {
	var failed []int
	for _, g := range rest {
		failed = append(failed, g.indexes...)
	}
	n := len(batch)
	if n == 0 {
		return sinks.Delivered(0)
	}
	if f == nil && len(failed) == n {
		f = sinks.Transient("", errors.New("deferred: not sent in this batch (rate limit)"))
	}
	if len(failed) == n {
		return sinks.Failed(n, f)
	}
	if len(failed) > 0 && len(failed)+len(h.indexes) == n && f != nil && !f.Permanent {
		// Nothing went through: Slack itself failed. Report it for the
		// whole batch, as without held alerts, so that the dispatcher
		// backs off instead of setting alerts aside one by one.
		return sinks.Failed(n, f)
	}
	r := sinks.Delivered(n)
	r.Hold(h.until, h.indexes...)
	switch {
	case len(failed) == 0:
	case f == nil:
		r.Defer(failed...)
	default:
		r.Fail(f, failed...)
	}
	return r
}

func (s *Sink) postGroup(ctx context.Context, batch []sinks.Item, g *group) *sinks.Failure {
	first := batch[g.indexes[0]].Alert
	last := batch[g.indexes[len(g.indexes)-1]].Alert
	worst := first
	for _, i := range g.indexes {
		if a := batch[i].Alert; a.Priority < worst.Priority {
			worst = a
		}
	}
	merged := make([]*scorer.Alert, 0, len(g.indexes)-1) // the group's other alerts, listed in the message
	for _, i := range g.indexes {
		if a := batch[i].Alert; a != worst {
			merged = append(merged, a)
		}
	}
	now := s.now()
	s.mu.Lock()
	inc := s.incidents[g.key]
	s.mu.Unlock()

	var msg message
	var more int
	if inc == nil {
		more = len(g.indexes) - 1
		msg = fullMessage(worst, merged, last.Time.Sub(first.Time), s.cfg.MaxTransitions)
	} else {
		// Digests count every alert since the incident's first message.
		more = inc.more + len(g.indexes)
		msg = digestMessage(worst, merged, more, last.Time.Sub(inc.first))
		msg.ThreadTS = inc.threadTS
	}
	ts, f := s.post(ctx, msg)
	if f != nil {
		return f
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case inc != nil:
		inc.more, inc.lastPost = more, s.now()
	case s.cfg.DigestWindow > 0:
		s.incidents[g.key] = &incident{opened: now, lastPost: s.now(), first: first.Time, threadTS: ts, more: more}
	}
	return nil
}

// expire forgets incidents older than the digest window, and the oldest
// ones past maxIncidents.
func (s *Sink) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, inc := range s.incidents {
		if now.Sub(inc.opened) > s.cfg.DigestWindow {
			delete(s.incidents, k)
		}
	}
	for k := range s.incidents {
		if len(s.incidents) <= maxIncidents {
			break
		}
		delete(s.incidents, k)
	}
}

// post sends one message and returns its ts (bot mode), or why it failed.
func (s *Sink) post(ctx context.Context, msg message) (string, *sinks.Failure) {
	target := s.target.Value()
	if !s.token.IsZero() {
		target = s.cfg.APIURL
		msg.Channel = s.cfg.Channel
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return "", sinks.Rejected("", fmt.Errorf("encode slack message: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return "", sinks.Rejected("", s.redact(fmt.Errorf("build slack request: %w", err)))
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if !s.token.IsZero() {
		req.Header.Set("Authorization", "Bearer "+s.token.Value())
	}
	resp, err := s.client.Do(req)
	s.mu.Lock()
	s.next = s.now().Add(s.cfg.MinInterval)
	s.mu.Unlock()
	if err != nil {
		return "", sinks.Transient("unavailable", s.redact(fmt.Errorf("post to slack: %w", err)))
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch class := sinks.ClassifyHTTP(resp.StatusCode); {
	case class == sinks.HTTPRateLimited:
		d, _ := sinks.ParseRetryAfter(resp.Header.Get("Retry-After"), s.now())
		d = max(d, s.cfg.MinInterval)
		s.mu.Lock()
		s.next = s.now().Add(d)
		s.mu.Unlock()
		return "", class.Failure(fmt.Errorf("slack rate limited: retry after %s", d)).After(d)
	case class == sinks.HTTPServer:
		return "", class.Failure(fmt.Errorf("slack answered %d: %s", resp.StatusCode, s.scrub(snippet(rb))))
	case resp.StatusCode >= 400:
		return "", httpError(resp.StatusCode, class, s.scrub(snippet(rb)), !s.token.IsZero())
	case resp.StatusCode >= 300:
		return "", sinks.Transient("http_3xx", fmt.Errorf("slack answered %d", resp.StatusCode))
	}
	if s.token.IsZero() {
		return "", nil
	}
	var api struct {
		OK    bool   `json:"ok"`
		TS    string `json:"ts"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(rb, &api); err != nil {
		return "", sinks.Transient("bad_response", fmt.Errorf("decode chat.postMessage answer: %w", err))
	}
	if !api.OK {
		return "", apiError(s.scrub(api.Error))
	}
	return api.TS, nil
}

// redact removes the webhook URL and the token from err. *url.Error
// prints the whole URL, and a Slack webhook URL is a credential.
func (s *Sink) redact(err error) error {
	return sinks.Redact(err, s.target.Value(), s.token.Value())
}

// scrub replaces any secret inside text (a proxy may echo part of one).
func (s *Sink) scrub(text string) string {
	return sinks.RedactText(text, s.target.Value(), s.token.Value())
}

func snippet(b []byte) string {
	return truncate(strings.TrimSpace(string(b)), 200)
}

// The dispatcher finds Pacer by type assertion; a changed signature must
// fail the build, not quietly stop the pacing.
var (
	_ sinks.Sink  = (*Sink)(nil)
	_ sinks.Pacer = (*Sink)(nil)
)
