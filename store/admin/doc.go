// Package admin serves the store's administration API over HTTP for a
// running falco-scorer (Badger allows one process per data directory, so the
// `baselines` command cannot open it while the service runs):
//
//	GET    /api/v1/baselines                  list images
//	GET    /api/v1/baselines/{image}          show one image (also ?image=)
//	GET    /api/v1/baselines/export?image=... export JSON lines (all images without image=)
//	POST   /api/v1/baselines/import           import JSON lines (request body)
//	DELETE /api/v1/baselines/{image}          reset one image (also ?image=)
//	GET    /api/v1/deadletters?sink=&limit=   list dead letters
//	POST   /api/v1/deadletters/replay?sink=   move dead letters back to the outbox
//
// Image names contain '/' and ':'; in a path segment they are URL-escaped
// (%2F), or passed as the image query parameter. When a token is configured,
// every request needs "Authorization: Bearer <token>" (the scheme in any
// case), compared in constant time; otherwise 401.
//
// The API is meant for operators' tools, never for browsers: requests that
// change state (POST, DELETE) are refused when the browser marks them
// cross-origin (Sec-Fetch-Site, Origin; 403) or when they carry a body type
// other than JSON or JSON lines (415; import needs one), since a web page
// may send text/plain and form bodies anywhere without a CORS preflight.
// WithHostCheck adds the defence against DNS rebinding (403 for a Host that
// is not a name of the listener); which names those are is the caller's
// knowledge.
//
// It must not touch Badger itself: everything goes through *store.DB. It
// holds no state beyond its options and is safe for concurrent use.
package admin
