package scorer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// marshalAlertReference is the encoding/json version of Alert.MarshalJSON
// that the hand-written encoder replaced, kept as the reference its tests
// compare against byte for byte.
func marshalAlertReference(a *Alert) ([]byte, error) {
	raw := []byte(a.Event.Raw)
	if len(raw) == 0 {
		var err error
		if raw, err = a.Event.EncodeJSON(); err != nil {
			return nil, err
		}
	} else if bytes.ContainsAny(raw, "\r\n") {
		var c bytes.Buffer
		if err := json.Compact(&c, raw); err != nil {
			return nil, fmt.Errorf("alert %s: falco event: %w", a.ID, err)
		}
		raw = c.Bytes()
	}
	var baseline *Maturity
	if a.Baseline.State != "" {
		baseline = &a.Baseline
	}
	head, err := json.Marshal(alertJSON{
		Schema: AlertSchema, ID: a.ID, Kind: a.Kind, Time: a.Time, Priority: a.Priority,
		Rule: a.Event.Rule, Reason: a.Reason, Subject: a.Subject, Score: a.Score.wire(),
		Baseline: baseline, Anomaly: a.Anomaly, Explain: a.Explain,
	})
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(head)+len(raw)+10)
	out = append(out, head[:len(head)-1]...)
	out = append(out, `,"falco":`...)
	// encoding/json splices a RawMessage with its bytes unchecked; the
	// encoder replaces invalid UTF-8 (alert_utf8_test.go checks how).
	out = append(out, ValidUTF8JSON(bytes.TrimSpace(raw))...)
	return append(out, '}'), nil
}

// checkMarshalMatchesReference fails t unless MarshalJSON and the reference
// both fail or both write the same bytes.
func checkMarshalMatchesReference(t *testing.T, a *Alert) {
	t.Helper()
	got, err := a.MarshalJSON()
	want, refErr := marshalAlertReference(a)
	if (err == nil) != (refErr == nil) {
		t.Fatalf("MarshalJSON(%#v) error = %v, reference error = %v", a, err, refErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("MarshalJSON(%#v) =\n%s\nreference:\n%s", a, got, want)
	}
}

// Pieces of random strings: every class of byte the JSON string escaper
// treats differently.
var stringPieces = []string{
	"", "a", "nginx:1.27", " ", "\"", "\\", "/", "<", ">", "&", "<script>", "\b", "\f", "\n", "\r", "\t",
	"\x00", "\x01", "\x1f", "\x7f", "é", "€", "😀", "\u2028", "\u2029", "\u2027", "\u202a", "\ufffd",
	"\xff", "\xc3", "\xe2\x80", "\xf0\x9f\x98", "\xed\xa0\x80", "\xc0\xaf", "\u0085", "\u00a0",
}

func randString(r *rand.Rand) string {
	var sb strings.Builder
	for range r.IntN(6) {
		sb.WriteString(stringPieces[r.IntN(len(stringPieces))])
	}
	return sb.String()
}

func randStrings(r *rand.Rand) []string {
	switch r.IntN(4) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	s := make([]string, 1+r.IntN(5))
	for i := range s {
		s[i] = randString(r)
	}
	return s
}

var floatEdges = []float64{
	0, math.Copysign(0, -1), 1, -1, 0.1, 1.0 / 3, 17.25 / 9.5, 1e-6, 9.99999e-7, -1e-6, 1e-7, 1.5e-9, 1e20,
	1e21, 9.99999999999999e20, -1e21, 1e300, 5e-324, math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64,
	123456789012345678, 1e-100, 2.5e-10,
}

func randFloat(r *rand.Rand) float64 {
	switch r.IntN(8) {
	case 0:
		return math.Float64frombits(r.Uint64()) // sometimes NaN or ±Inf: both must fail
	case 1, 2:
		return floatEdges[r.IntN(len(floatEdges))]
	case 3:
		return math.Ldexp(r.Float64(), r.IntN(160)-80) * float64(1-2*r.IntN(2))
	default:
		return r.Float64() * 40
	}
}

func randTime(r *rand.Rand) time.Time {
	var t time.Time
	switch r.IntN(6) {
	case 0:
		t = time.Time{}
	case 1:
		t = time.Unix(r.Int64N(1<<40)-1<<39, r.Int64N(2e9)) // some years outside [0,9999]
	default:
		t = time.Unix(r.Int64N(4e9), r.Int64N(1e9)*int64(r.IntN(2)))
	}
	switch r.IntN(4) {
	case 0:
		return t.UTC()
	case 1:
		return t.In(time.FixedZone("X", r.IntN(48*3600)-24*3600)) // some offsets of 24 h or more
	case 2:
		return t.Local()
	}
	return t
}

func randPriority(r *rand.Rand) Priority {
	if r.IntN(20) == 0 {
		return Priority(r.IntN(256) - 128) // mostly invalid: both must fail
	}
	return Priority(r.IntN(8))
}

var rawEvents = []string{
	"",
	strings.ReplaceAll(sample, "\n", ""),
	sample,
	"  " + strings.ReplaceAll(sample, "\n", "") + " \t",
	"{\n  \"rule\": \"r\",\r\n\t\"priority\": \"Notice\", \"time\": \"2026-11-24T12:00:00Z\",\n \"o\": [ 1 , { } , \"a b\\\" c\" ]\n}\n",
	"{\n\"rule\": \"r\"", // invalid and multi-line: both must fail
	"{\"rule\": \"r\"",   // invalid but one line: spliced as is, as before
	"\u00a0{\"a\":1}\u00a0",
	"{\"a\":\"\xff\n\"}",
	"\n",
	"[1,\n2] x",
}

func randAlert(r *rand.Rand) *Alert {
	a := &Alert{
		ID: randString(r), Kind: randString(r), Time: randTime(r), Priority: randPriority(r),
		Event: Event{
			Time: randTime(r), Priority: randPriority(r), Rule: randString(r), Output: randString(r),
			Raw: json.RawMessage(rawEvents[r.IntN(len(rawEvents))]),
		},
		Subject: Subject{
			Image: randString(r), ImageSource: randString(r), ContainerID: randString(r), Container: randString(r),
			Namespace: randString(r), Pod: randString(r), Process: randString(r),
			PID:    []int64{0, 1, -1, 4242, math.MaxInt64, math.MinInt64, r.Int64()}[r.IntN(7)],
			Parent: randString(r), Hostname: randString(r),
			TreeRootPID: []int64{0, 1, -1, 4242, math.MaxInt64, math.MinInt64, r.Int64()}[r.IntN(7)], TreeRoot: randString(r),
		},
		Score: Score{Value: randFloat(r), Threshold: randFloat(r), Ratio: randFloat(r), Band: randString(r),
			Verdict:       []string{VerdictAnomalous, VerdictNormal, VerdictLearning, VerdictUnscored, randString(r)}[r.IntN(5)],
			FalcoPriority: randPriority(r)},
		Baseline: Maturity{State: []string{StateMonitoring, StateLearning, ""}[r.IntN(3)], Events: r.Uint64() >> r.IntN(64), Transitions: r.Uint64() >> r.IntN(64),
			Since: randTime(r), Graduated: randTime(r), Inherited: randString(r)},
		Reason: randString(r),
	}
	if r.IntN(3) == 0 {
		a.Anomaly = &AnomalyRef{ID: randString(r), Kind: randString(r), Time: randTime(r), Score: randFloat(r),
			Threshold: randFloat(r), Ratio: randFloat(r), Process: randString(r), PID: r.Int64N(1 << 22)}
	}
	if r.IntN(4) > 0 {
		a.Explain = &Explanation{Window: randStrings(r)}
		if r.IntN(4) > 0 {
			a.Explain.Transitions = make([]Transition, r.IntN(4))
			for i := range a.Explain.Transitions {
				a.Explain.Transitions[i] = Transition{History: randStrings(r), Symbol: randString(r),
					Probability: randFloat(r), Surprise: randFloat(r), HistorySeen: r.Uint64() >> r.IntN(64)}
			}
		}
	}
	return a
}

func TestAlertMarshalMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	failed := 0
	for range n {
		a := randAlert(r)
		if _, err := marshalAlertReference(a); err != nil {
			failed++
		}
		checkMarshalMatchesReference(t, a)
	}
	// The generator must exercise both outcomes.
	if failed == 0 || failed == n {
		t.Errorf("%d of %d random alerts failed to marshal, want some but not all", failed, n)
	}
	checkMarshalMatchesReference(t, benchAlert(t))
}

// FuzzAlertMarshalMatchesReference checks the hand-written encoder against
// encoding/json: the same alerts fail, the others give the same bytes.
func FuzzAlertMarshalMatchesReference(f *testing.F) {
	oneLine := strings.ReplaceAll(sample, "\n", "")
	f.Add("id", "anomaly", "rule", "reason", "nginx:1.27", "c1", "<b>&amp;</b>", int64(4242), uint64(120000),
		int64(1795521600), int64(123456789), 0, int8(4), int8(5), 17.25, 9.5, 1.0e-7, "execve", true, []byte(oneLine))
	f.Add("\u2028\u2029", "\x00\x1f\x7f", "\xff\xfe", "\"\\/", "😀é", "", "\xe2\x80", int64(-1), uint64(math.MaxUint64),
		int64(-62135596801), int64(-1), 3600*24, int8(9), int8(-1), 1e21, math.Copysign(0, -1), 5e-324, "", false, []byte(sample))
	f.Add("x", "falco", "r", "", "", "", "", int64(0), uint64(0), int64(253402300800), int64(0), -3600*23-59*60,
		int8(0), int8(7), 1e-6, 9.99999e-7, 1e300, "s", true, []byte("{\n\"a\": [1, 2,\n{}]}"))
	f.Add("x", "falco", "r", "", "", "", "", int64(0), uint64(0), int64(0), int64(0), 0,
		int8(0), int8(7), 0.0, 0.0, 0.0, "s", false, []byte("{\n\"a\": [1, 2,\n{}]"))
	f.Add("x", "falco", "r", "", "", "", "", int64(0), uint64(0), int64(0), int64(0), 0,
		int8(0), int8(7), 0.0, 0.0, 0.0, "s", false, []byte(""))
	f.Add("x", "falco", "r", "", "", "", "", int64(0), uint64(0), int64(0), int64(0), 0,
		int8(0), int8(7), 0.0, 0.0, 0.0, "s", false, []byte(" \u00a0{\"a\":\"b\\\"\\n\"}\r\n\u0085"))
	f.Fuzz(func(t *testing.T, id, kind, rule, reason, image, container, symbol string, pid int64, events uint64,
		sec, nsec int64, offset int, prio, falcoPrio int8, value, threshold, prob float64, window string,
		explain bool, raw []byte) {
		tm := time.Unix(sec, nsec).In(time.FixedZone("", offset))
		a := &Alert{
			ID: id, Kind: kind, Time: tm, Priority: Priority(prio), Reason: reason,
			Event: Event{Rule: rule, Time: tm, Priority: Priority(falcoPrio), Output: reason, Raw: raw},
			Subject: Subject{Image: image, ImageSource: symbol, ContainerID: container, Container: container,
				Namespace: window, Pod: symbol, Process: rule, PID: pid, Parent: kind, Hostname: id,
				TreeRootPID: -pid, TreeRoot: reason},
			Score: Score{Value: value, Threshold: threshold, Ratio: prob, Band: symbol, Verdict: window,
				FalcoPriority: Priority(falcoPrio)},
			Baseline: Maturity{State: kind, Events: events, Transitions: uint64(pid), Since: time.Unix(nsec, sec).UTC(),
				Inherited: image},
		}
		if explain {
			a.Explain = &Explanation{Window: strings.Split(window, ","), Transitions: []Transition{
				{History: strings.Fields(window), Symbol: symbol, Probability: prob, Surprise: -value, HistorySeen: events},
				{Symbol: rule, Probability: threshold},
			}}
		}
		checkMarshalMatchesReference(t, a)
	})
}
