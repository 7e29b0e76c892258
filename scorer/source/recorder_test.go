package source

import (
	"net/http/httptest"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// responseRecorder aliases httptest's recorder for brevity in tables.
type responseRecorder = httptest.ResponseRecorder

func newResponseRecorder() *responseRecorder { return httptest.NewRecorder() }

// value reads a counter or the sample count of a histogram (testutil would
// pull in another module).
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

// seriesCount counts the series of the named metric family in reg.
func seriesCount(reg *prometheus.Registry, name string) int {
	mfs, err := reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}
