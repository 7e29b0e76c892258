package source

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Bounded values of the source label and of the reject reason label, in
// addition to scorer's decode reasons.
const (
	SourceHTTP   = "http"
	SourceGRPC   = "grpc"
	SourceNDJSON = "ndjson"

	reasonTooLarge          = "too_large"
	reasonUnsupportedMedia  = "unsupported_media_type"
	reasonInvalidGzip       = "invalid_gzip"
	reasonReadError         = "read_error"
	reasonUnauthorized      = "unauthorized"
	reasonMethodNotAllowed  = "method_not_allowed"
	reasonNotFound          = "not_found"
	reasonTooManyRequests   = "too_many_requests"
	reasonOverloaded        = "overloaded"
	reasonUnavailable       = "unavailable"
	reasonLineTooLong       = "line_too_long"
	reasonUnsupportedCoding = "unsupported_encoding"
)

// metrics are shared by the inputs: each constructor registers them and
// reuses the collectors another input already registered.
type metrics struct {
	received   *prometheus.CounterVec   // source
	rejected   *prometheus.CounterVec   // source, reason
	duration   *prometheus.HistogramVec // code
	reconnects prometheus.Counter
	retries    *prometheus.CounterVec // source, reason
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "falco_scorer", Name: "events_received_total",
			Help: "Events accepted from an input (durable when counted).",
		}, []string{"source"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "falco_scorer", Name: "events_rejected_total",
			Help: "Rejected events, or rejected requests when no event could be decoded, by source and reason.",
		}, []string{"source", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "falco_scorer", Name: "http_ingest_duration_seconds",
			Help:    "Duration of HTTP ingest requests, Accept included, by status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"code"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "falco_scorer", Name: "grpc_reconnects_total",
			Help: "Times the gRPC sub stream was re-established after being lost.",
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "falco_scorer", Name: "source_accept_retries_total",
			Help: "Accept calls retried by the gRPC and NDJSON inputs, by reason.",
		}, []string{"source", "reason"}),
	}
	var err error
	if m.received, err = register(reg, m.received); err != nil {
		return nil, err
	}
	if m.rejected, err = register(reg, m.rejected); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.reconnects, err = register(reg, m.reconnects); err != nil {
		return nil, err
	}
	if m.retries, err = register(reg, m.retries); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the equal collector already registered.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("register metric: %w", err)
	}
	return c, nil
}
