package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/pipeline"
	"github.com/falco-scorer/falco-scorer/scorer/secret"
	"github.com/falco-scorer/falco-scorer/store"
)

// DescribeFunc adds model details (top transitions, threshold, maturity) to
// the show output; store cannot decode counts itself. It returns any value
// that encodes to JSON.
type DescribeFunc func(image string, meta []byte, buckets []scorer.BaselineBucket) any

// Option configures the handler.
type Option func(*handler)

// WithDescribe sets the hook that adds model details to show.
func WithDescribe(fn DescribeFunc) Option { return func(h *handler) { h.describe = fn } }

// WithExclusive sets the hook each reset or import of an image runs its
// store write through: a running pipeline drops the image's in-memory model
// and holds the image out of scoring while write runs, so that no flush
// interleaves and the next event reloads what was stored.
func WithExclusive(fn func(image string, write func() error) error) Option {
	return func(h *handler) { h.exclusive = fn }
}

// WithMaxImportBytes bounds the import request body (default 512 MiB).
func WithMaxImportBytes(n int64) Option { return func(h *handler) { h.maxImport = n } }

// WithHostCheck makes the handler answer 403 to a request whose Host
// (lowercase, without port, see RequestHost) allow rejects, before anything
// else. A DNS-rebinding page reaches a local listener under the attacker's
// own host name, as a same-origin request that the token is the only other
// defence against; the caller knows which names its listener answers to.
func WithHostCheck(allow func(host string) bool) Option {
	return func(h *handler) { h.allowHost = allow }
}

type handler struct {
	db        *store.DB
	bearer    Bearer
	allowHost func(string) bool // nil: any host
	csrf      *http.CrossOriginProtection
	log       zerolog.Logger
	describe  DescribeFunc
	exclusive func(image string, write func() error) error
	maxImport int64
	mux       *http.ServeMux
}

// Handler returns the admin API for db. A zero token disables
// authentication (bind the listener to loopback then). Whatever the token,
// requests that change state (POST, DELETE) are refused when a browser
// marks them cross-origin (Sec-Fetch-Site, Origin: 403) or when their body
// is not JSON (415): a web page can send text/plain or form bodies
// anywhere without a CORS preflight, and the token does not stop a page
// that is served from the same host.
func Handler(db *store.DB, token secret.Secret, log zerolog.Logger, opts ...Option) http.Handler {
	h := &handler{db: db, log: log.With().Str("component", "admin").Logger(), maxImport: 512 << 20,
		bearer: NewBearer(token), csrf: http.NewCrossOriginProtection(),
		exclusive: func(_ string, write func() error) error { return write() }}
	for _, o := range opts {
		o(h)
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /api/v1/baselines", h.list)
	m.HandleFunc("GET /api/v1/baselines/export", h.export)
	m.HandleFunc("POST /api/v1/baselines/import", h.importFile)
	m.HandleFunc("GET /api/v1/baselines/{image}", h.show)
	m.HandleFunc("DELETE /api/v1/baselines/{image}", h.reset)
	m.HandleFunc("DELETE /api/v1/baselines", h.reset)
	m.HandleFunc("GET /api/v1/deadletters", h.deadLetters)
	m.HandleFunc("POST /api/v1/deadletters/replay", h.replay)
	h.mux = m
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.allowHost != nil && !h.allowHost(RequestHost(r)) {
		writeError(w, http.StatusForbidden, fmt.Errorf("host %q is not a name of this listener (admin.allowed_hosts)", RequestHost(r)))
		return
	}
	if h.bearer.Enabled() && !h.bearer.Check(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="falco-scorer admin"`)
		writeError(w, http.StatusUnauthorized, errors.New("missing or invalid bearer token"))
		return
	}
	if err := h.csrf.Check(r); err != nil {
		writeError(w, http.StatusForbidden, fmt.Errorf("%w: the admin api does not take requests from web pages", err))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !safeMethod(r.Method) && !isJSON(ct) {
		writeError(w, http.StatusUnsupportedMediaType, fmt.Errorf("content type %q: want application/x-ndjson or application/json", ct))
		return
	}
	h.mux.ServeHTTP(w, r)
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// isJSON reports a JSON or JSON-lines media type (the export is
// application/x-ndjson). None of them is one a browser may send
// cross-origin without a CORS preflight, which this API never grants.
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case "application/json", "application/x-ndjson", "application/ndjson",
		"application/jsonl", "application/x-jsonlines", "application/jsonlines":
		return true
	}
	return false
}

// Bearer checks "Authorization: Bearer <token>" against a set of tokens,
// in constant time (it compares SHA-256 sums, so neither the token nor its
// length leaks through timing). The scheme name is case-insensitive (RFC
// 9110 §11.1). The zero value accepts no token and is not Enabled.
type Bearer struct {
	sums [][sha256.Size]byte
}

// NewBearer accepts any of tokens; zero secrets are skipped.
func NewBearer(tokens ...secret.Secret) Bearer {
	var b Bearer
	for _, t := range tokens {
		if !t.IsZero() {
			b.sums = append(b.sums, sha256.Sum256([]byte(t.Value())))
		}
	}
	return b
}

// Enabled reports whether any token is set.
func (b Bearer) Enabled() bool { return len(b.sums) > 0 }

// Check reports whether r carries one of the tokens.
func (b Bearer) Check(r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	const scheme = "bearer "
	if len(auth) <= len(scheme) || !strings.EqualFold(auth[:len(scheme)], scheme) {
		return false
	}
	sum := sha256.Sum256([]byte(auth[len(scheme):]))
	ok := 0
	for _, want := range b.sums {
		ok |= subtle.ConstantTimeCompare(sum[:], want[:])
	}
	return ok == 1
}

// RequestHost returns r's Host header without its port, lowercase, without
// IPv6 brackets and a trailing dot.
func RequestHost(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSuffix(host, "]"), "["), ".")
	return strings.ToLower(host)
}

// imageParam takes the image from the path segment or the image parameter.
func imageParam(r *http.Request) string {
	if v := r.PathValue("image"); v != "" {
		return v
	}
	return r.URL.Query().Get("image")
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Has("image") {
		h.show(w, r)
		return
	}
	infos, err := h.db.Images()
	if err != nil {
		h.fail(w, "list baselines", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"images": List(infos)})
}

// ListView is one image in the list output: its storage, and what its
// baseline is doing (state, events, progress to graduation or threshold,
// graduation time, last seen; pipeline.DescribeMeta).
type ListView struct {
	store.ImageInfo
	Baseline map[string]any `json:"baseline,omitempty"`
}

// List builds the list output; the CLI uses it too.
func List(infos []store.ImageInfo) []ListView {
	out := make([]ListView, len(infos))
	for i, in := range infos {
		out[i] = ListView{ImageInfo: in, Baseline: pipeline.DescribeMeta(in.Meta)}
	}
	return out
}

// BucketView is one stored blob in the show output.
type BucketView struct {
	Bucket time.Time `json:"bucket"`
	Bytes  int       `json:"bytes"`
}

// ShowView is the show output.
type ShowView struct {
	store.ImageInfo
	// Baseline is what the baseline is doing: state, thresholds, graduation
	// time or progress towards it (pipeline.DescribeMeta).
	Baseline    map[string]any `json:"baseline,omitempty"`
	BucketBlobs []BucketView   `json:"bucket_blobs"`
	Model       any            `json:"model,omitempty"`
}

func (h *handler) show(w http.ResponseWriter, r *http.Request) {
	image := imageParam(r)
	info, buckets, err := h.db.Image(image)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Errorf("image %q not found", image))
		return
	}
	if err != nil {
		h.fail(w, "show baseline", err)
		return
	}
	writeJSON(w, http.StatusOK, Show(info, buckets, h.describe))
}

// Show builds the show output; the CLI uses it too.
func Show(info store.ImageInfo, buckets []scorer.BaselineBucket, describe DescribeFunc) ShowView {
	v := ShowView{ImageInfo: info, Baseline: pipeline.DescribeMeta(info.Meta), BucketBlobs: make([]BucketView, len(buckets))}
	for i, b := range buckets {
		v.BucketBlobs[i] = BucketView{Bucket: b.Bucket, Bytes: len(b.Counts)}
	}
	if describe != nil {
		v.Model = describe(info.Image, info.Meta, buckets)
	}
	return v
}

func (h *handler) export(w http.ResponseWriter, r *http.Request) {
	images := r.URL.Query()["image"]
	// Check names first so that a missing image is a 404, not a cut stream.
	for _, img := range images {
		if _, _, err := h.db.Image(img); errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, fmt.Errorf("image %q not found", img))
			return
		} else if err != nil {
			h.fail(w, "export baselines", err)
			return
		}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Disposition", `attachment; filename="baselines.jsonl"`)
	n, err := h.db.Export(w, images...)
	if err != nil {
		// Headers are gone; the truncated file fails the import's count check.
		h.log.Warn().Err(err).Msg("export baselines")
		return
	}
	h.log.Info().Int("images", n).Msg("baselines exported")
}

func (h *handler) importFile(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Type") == "" {
		// A body without a type is a "simple" request a page may send
		// anywhere; curl --data-binary sends a form type unless told.
		writeError(w, http.StatusUnsupportedMediaType, errors.New("content type missing: send the export with Content-Type: application/x-ndjson"))
		return
	}
	body := http.MaxBytesReader(w, r.Body, h.maxImport)
	images, err := h.db.ImportWith(body, store.ImportLimits{}, h.exclusive)
	n := len(images)
	var ie *store.ImportError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("import body above %d bytes (%d images imported before)", h.maxImport, n))
		return
	case errors.As(err, &ie):
		writeError(w, http.StatusBadRequest, err)
		return
	case err != nil:
		h.fail(w, "import baselines", err)
		return
	}
	h.log.Info().Int("images", n).Msg("baselines imported")
	writeJSON(w, http.StatusOK, map[string]any{"imported": n})
}

func (h *handler) reset(w http.ResponseWriter, r *http.Request) {
	image := imageParam(r)
	if image == "" {
		writeError(w, http.StatusBadRequest, errors.New("image: empty"))
		return
	}
	var ok bool
	err := h.exclusive(image, func() (err error) {
		ok, err = h.db.ResetImage(image)
		return err
	})
	if err != nil {
		h.fail(w, "reset baseline", err)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("image %q not found", image))
		return
	}
	h.log.Info().Str("image", scorer.TruncateForLog(image)).Msg("baseline reset")
	writeJSON(w, http.StatusOK, map[string]any{"reset": image})
}

// DeadLetterView is one dead letter in the API output; the payload is
// inlined as JSON when it is JSON.
type DeadLetterView struct {
	Sink     string          `json:"sink"`
	Seq      uint64          `json:"seq"`
	AlertID  string          `json:"alert_id"`
	Enqueued time.Time       `json:"enqueued"`
	DeadAt   time.Time       `json:"dead_at"`
	Reason   string          `json:"reason"`
	Payload  json.RawMessage `json:"payload"`
}

func (h *handler) deadLetters(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit: %q not in [1, 10000]", s))
			return
		}
		limit = n
	}
	dls, err := h.db.DeadLetters(r.URL.Query().Get("sink"), limit)
	if err != nil {
		h.fail(w, "list dead letters", err)
		return
	}
	out := make([]DeadLetterView, len(dls))
	for i, dl := range dls {
		// Invalid UTF-8 (an entry written before alerts were made strict
		// JSON) becomes U+FFFD, as in what the sinks send.
		p := json.RawMessage(scorer.ValidUTF8JSON(dl.Payload))
		if !json.Valid(p) {
			p, _ = json.Marshal(dl.Payload) // base64 string
		}
		out[i] = DeadLetterView{Sink: dl.Sink, Seq: dl.Seq, AlertID: dl.AlertID, Enqueued: dl.Enqueued,
			DeadAt: dl.DeadAt, Reason: dl.Reason, Payload: p}
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": out})
}

func (h *handler) replay(w http.ResponseWriter, r *http.Request) {
	sink := r.URL.Query().Get("sink")
	n, err := h.db.ReplayDeadLetters(sink)
	if err != nil {
		h.fail(w, "replay dead letters", err)
		return
	}
	h.log.Info().Str("sink", sink).Int("replayed", n).Msg("dead letters replayed")
	writeJSON(w, http.StatusOK, map[string]any{"replayed": n})
}

func (h *handler) fail(w http.ResponseWriter, op string, err error) {
	if errors.Is(err, store.ErrClosed) {
		writeError(w, http.StatusServiceUnavailable, errors.New("store closed"))
		return
	}
	h.log.Warn().Err(err).Str("op", op).Msg("admin request failed")
	writeError(w, http.StatusInternalServerError, fmt.Errorf("%s: internal error", op))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
