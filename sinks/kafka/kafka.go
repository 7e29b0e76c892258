package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/rs/zerolog"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/tlsfiles"
	"github.com/falco-scorer/falco-scorer/sinks"
)

// Record header names.
const (
	HeaderSchema   = "schema"   // scorer.AlertSchema
	HeaderAlertID  = "alert_id" // stable id for deduplication
	HeaderKind     = "kind"
	HeaderPriority = "priority" // Falco spelling
	HeaderScore    = "score"    // the alert's score (score.value), decimal; absent when the alert has none
	HeaderBand     = "band"
	HeaderRule     = "rule"
	HeaderImage    = "image"
)

// Sink writes alerts to a Kafka topic.
type Sink struct {
	cfg    Config
	log    zerolog.Logger
	w      *kafkago.Writer
	client *kafkago.Client

	mu      sync.Mutex
	created bool // the topic exists (or creation is off)
}

// New builds the sink from cfg: it resolves the SASL password and loads the
// TLS files, but does not connect (the first Send does).
func New(cfg Config, log zerolog.Logger) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log = log.With().Str("component", "sinks.kafka").Logger()
	tr := &kafkago.Transport{
		DialTimeout: cfg.DialTimeout,
		ClientID:    cfg.ClientID,
	}
	if cfg.TLS.Enabled {
		tc, err := tlsfiles.Client(tlsfiles.Files{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile, CAFile: cfg.TLS.CAFile},
			cfg.TLS.ServerName, cfg.TLS.InsecureSkipVerify)
		if err != nil {
			return nil, err
		}
		tr.TLS = tc
	}
	if cfg.SASL.Mechanism != "" {
		m, err := mechanism(cfg.SASL)
		if err != nil {
			return nil, err
		}
		tr.SASL = m
	}
	codec, _ := compression(cfg.Compression)
	acks, _ := requiredAcks(cfg.RequiredAcks)
	addr := kafkago.TCP(cfg.Brokers...)
	// A keyed record goes where Java's default partitioner puts it (murmur2
	// of the key), so one key's records stay in one partition, in order.
	// Consistent stays false: true would hash every nil key (key: none) into
	// one partition; false spreads them at random (librdkafka's
	// murmur2_random; Java spreads them too).
	balancer := &kafkago.Murmur2Balancer{}
	s := &Sink{
		cfg: cfg, log: log,
		w: &kafkago.Writer{
			Addr:         addr,
			Topic:        cfg.Topic,
			Balancer:     balancer,
			MaxAttempts:  cfg.MaxAttempts,
			BatchSize:    cfg.BatchSize,
			BatchBytes:   cfg.BatchBytes,
			BatchTimeout: cfg.BatchTimeout,
			WriteTimeout: cfg.WriteTimeout,
			ReadTimeout:  cfg.WriteTimeout,
			RequiredAcks: acks,
			Compression:  codec,
			Transport:    tr,
			ErrorLogger: kafkago.LoggerFunc(func(msg string, args ...any) {
				log.Debug().Str("detail", fmt.Sprintf(msg, args...)).Msg("kafka writer")
			}),
		},
		client:  &kafkago.Client{Addr: addr, Timeout: cfg.WriteTimeout, Transport: tr},
		created: !cfg.CreateTopic,
	}
	return s, nil
}

// Name returns "kafka", the sink's name in the outbox and the routing rules.
func (s *Sink) Name() string { return "kafka" }

// Send writes batch as one synchronous produce and returns once the broker
// acknowledged every record with the configured acks. Outcomes: all
// delivered; the records of the partitions that failed, one by one, when
// the broker answered per partition (the other records are stored); the
// whole batch failed when no broker answered. A record the broker will
// never take (too large, invalid) is permanent; any other failure is
// transient.
func (s *Sink) Send(ctx context.Context, batch []sinks.Item) sinks.Result {
	if len(batch) == 0 {
		return sinks.Delivered(0)
	}
	if err := s.ensureTopic(ctx); err != nil {
		return sinks.Failed(len(batch), sinks.Transient("create_topic", err))
	}
	msgs := make([]kafkago.Message, len(batch))
	for i, it := range batch {
		msgs[i] = s.message(it)
	}
	err := s.w.WriteMessages(ctx, msgs...)
	if err == nil {
		return sinks.Delivered(len(batch))
	}
	var werrs kafkago.WriteErrors
	if errors.As(err, &werrs) && len(werrs) == len(batch) {
		var failed []int
		var first error
		for i, e := range werrs {
			if e != nil {
				failed = append(failed, i)
				if first == nil {
					first = e
				}
			}
		}
		r := sinks.Delivered(len(batch))
		if len(failed) == 0 {
			return r
		}
		cause := classify(fmt.Errorf("write %d of %d records to topic %s: %w", len(failed), len(batch), s.cfg.Topic, first))
		var ke kafkago.Error
		if len(failed) == len(batch) && !errors.As(first, &ke) {
			return sinks.Failed(len(batch), cause) // no broker answer (network, timeout): the sink is down
		}
		// The broker answered per partition: these records failed one by
		// one, and the dispatcher may set them aside and go on with others.
		r.Fail(cause, failed...)
		return r
	}
	return sinks.Failed(len(batch), classify(fmt.Errorf("write to topic %s: %w", s.cfg.Topic, err)))
}

// HeaderOnly reports true: a record needs only the alert's header and the
// stored payload, so the dispatcher does not decode the whole alert.
func (s *Sink) HeaderOnly() bool { return true }

// OrderKey is the record key, whose records stay in order (one partition);
// with key: none nothing is ordered, so each alert is its own key.
func (s *Sink) OrderKey(it sinks.Item) string {
	if s.cfg.Key == KeyNone {
		return it.Header.ID
	}
	return s.recordKey(&it.Header)
}

// recordKey is the record key that sinks.kafka.key selects ("" for none).
func (s *Sink) recordKey(h *scorer.AlertHeader) string {
	switch s.cfg.Key {
	case KeyImage:
		return h.Image
	case KeyContainer:
		if h.ContainerID != "" {
			return h.ContainerID
		}
		return h.Image
	case KeyRule:
		return h.Rule
	}
	return ""
}

// message builds one record. The value is the stored payload, unchanged.
func (s *Sink) message(it sinks.Item) kafkago.Message {
	h := &it.Header
	var key []byte
	if k := s.recordKey(h); k != "" {
		key = []byte(k)
	}
	headers := []kafkago.Header{
		{Key: HeaderSchema, Value: []byte(scorer.AlertSchema)},
		{Key: HeaderAlertID, Value: []byte(h.ID)},
		{Key: HeaderKind, Value: headerValue(h.Kind)},
		{Key: HeaderPriority, Value: []byte(h.Priority.String())},
	}
	if h.Scored { // an alert without a score has no score header, not "0"
		headers = append(headers, kafkago.Header{Key: HeaderScore, Value: strconv.AppendFloat(nil, h.Score, 'g', -1, 64)})
	}
	headers = append(headers,
		kafkago.Header{Key: HeaderBand, Value: headerValue(h.Band)},
		kafkago.Header{Key: HeaderRule, Value: headerValue(h.Rule)},
		kafkago.Header{Key: HeaderImage, Value: headerValue(h.Image)})
	return kafkago.Message{Key: key, Value: it.Payload, Time: h.Time, Headers: headers}
}

// headerValue returns s as a header value in UTF-8: each byte that is not
// becomes U+FFFD, as in the record's JSON value. Rule and image come from
// the Falco event, whose bytes a consumer reading headers as text must not
// choke on. The record key is left as is: it only partitions.
func headerValue(s string) []byte {
	if utf8.ValidString(s) {
		return []byte(s)
	}
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return b
}

// ensureTopic creates the topic once when create_topic is set. A failure is
// transient (reason create_topic): the next Send tries again.
func (s *Sink) ensureTopic(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.created {
		return nil
	}
	resp, err := s.client.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{
		Topic: s.cfg.Topic, NumPartitions: s.cfg.Partitions, ReplicationFactor: s.cfg.ReplicationFactor,
	}}})
	if err == nil {
		err = resp.Errors[s.cfg.Topic]
	}
	if errors.Is(err, kafkago.TopicAuthorizationFailed) || errors.Is(err, kafkago.ClusterAuthorizationFailed) {
		// A producer is often allowed to write to a topic it may not
		// create; the broker answers so even when the topic exists. Go on:
		// if it does not exist, the produce fails and says so.
		s.log.Warn().Err(err).Str("topic", s.cfg.Topic).Msg("not allowed to create the topic; assuming it exists (set create_topic: false to skip this)")
		err = nil
	}
	if err != nil && !errors.Is(err, kafkago.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", s.cfg.Topic, err)
	}
	s.created = true
	s.log.Info().Str("topic", s.cfg.Topic).Msg("topic ready")
	return nil
}

// classify returns err as a Failure: permanent for the errors a retry
// cannot fix, each with a bounded reason.
func classify(err error) *sinks.Failure {
	var ke kafkago.Error
	var tooLarge kafkago.MessageTooLargeError
	switch {
	case errors.As(err, &tooLarge), errors.Is(err, kafkago.MessageSizeTooLarge), errors.Is(err, kafkago.RecordListTooLarge):
		return sinks.Rejected("too_large", err)
	case errors.Is(err, kafkago.InvalidRecord):
		return sinks.Rejected("invalid_record", err)
	case errors.Is(err, kafkago.InvalidMessage):
		// CORRUPT_MESSAGE: a CRC mismatch on the way; kafka-go and Java
		// (CorruptRecordException is retriable) both send again.
		return sinks.Transient("corrupt_message", err)
	case errors.Is(err, context.DeadlineExceeded):
		return sinks.Transient("timeout", err)
	case errors.As(err, &ke):
		return sinks.Transient("broker_error", err)
	default:
		return sinks.Transient("unavailable", err)
	}
}

// Close flushes the writer within ctx.
func (s *Sink) Close(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.w.Close() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("close kafka writer: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close kafka writer: %w", ctx.Err())
	}
}

func compression(name string) (kafkago.Compression, error) {
	switch name {
	case "none", "":
		return 0, nil
	case "gzip":
		return kafkago.Gzip, nil
	case "snappy":
		return kafkago.Snappy, nil
	case "lz4":
		return kafkago.Lz4, nil
	case "zstd":
		return kafkago.Zstd, nil
	}
	return 0, fmt.Errorf("%q, want none, gzip, snappy, lz4 or zstd", name)
}

func requiredAcks(name string) (kafkago.RequiredAcks, error) {
	switch name {
	case "all", "-1":
		return kafkago.RequireAll, nil
	case "one", "1":
		return kafkago.RequireOne, nil
	}
	return 0, fmt.Errorf("%q, want all or one (none could lose alerts)", name)
}

func mechanism(c SASLConfig) (sasl.Mechanism, error) {
	pw, err := c.PasswordRef().ResolveRequired()
	if err != nil {
		return nil, err
	}
	switch c.Mechanism {
	case MechanismPlain:
		return plain.Mechanism{Username: c.Username, Password: pw.Value()}, nil
	case MechanismSCRAMSHA256, MechanismSCRAMSHA512:
		algo := scram.SHA256
		if c.Mechanism == MechanismSCRAMSHA512 {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, c.Username, pw.Value())
		if err != nil {
			// scram errors name the failing step, never the password.
			return nil, fmt.Errorf("sasl.mechanism: %w", err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("sasl.mechanism: %q unsupported", c.Mechanism)
}

// The dispatcher finds these by type assertion; a changed signature must
// fail the build, not quietly drop header-only decoding or key order.
var (
	_ sinks.Sink       = (*Sink)(nil)
	_ sinks.HeaderOnly = (*Sink)(nil)
	_ sinks.Keyed      = (*Sink)(nil)
)
