package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// routeKey carries a *string in a request's context: WithRoute writes the
// matched pattern into it, Instrument reads it after the handler.
type routeKey struct{}

// WithRoute wraps a ServeMux so that Instrument, further out, learns the
// pattern the mux matched ("POST /v1/tasks", "GET /v1/tasks/{id}"): a label
// of bounded cardinality, unlike the path. Wrap each mux of a nested tree;
// the innermost match wins.
func WithRoute(mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		if route, ok := r.Context().Value(routeKey{}).(*string); ok && *route == "" && r.Pattern != "" {
			*route = r.Pattern
		}
	})
}

// RouteFromContext is the route pattern WithRoute recorded for the request
// of ctx, or "" before the mux ran or when nothing matched.
func RouteFromContext(ctx context.Context) string {
	if route, ok := ctx.Value(routeKey{}).(*string); ok {
		return *route
	}
	return ""
}

// ContextWithRouteHolder returns ctx carrying an empty route holder for
// WithRoute to fill: Instrument does this; other outer middleware (the
// request log, tracing) use it when they run without Instrument.
func ContextWithRouteHolder(ctx context.Context) context.Context {
	if _, ok := ctx.Value(routeKey{}).(*string); ok {
		return ctx
	}
	return context.WithValue(ctx, routeKey{}, new(string))
}

// Instrument counts and times every request by route pattern, method and
// status. Unmatched requests count under route "none".
func (m *Metrics) Instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r = r.WithContext(ContextWithRouteHolder(r.Context()))
		rec := &StatusRecorder{ResponseWriter: w, Status: http.StatusOK}
		next.ServeHTTP(rec, r)
		route := RouteFromContext(r.Context())
		if route == "" {
			route = "none"
		}
		method := MethodLabel(r.Method)
		m.httpRequests.WithLabelValues(route, method, strconv.Itoa(rec.Status)).Inc()
		m.httpDuration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	})
}

// MethodLabel is method as a label value of bounded cardinality: one of
// net/http's nine methods, else "other". A request's method is any token
// the client sends (up to the header limit, 64 KiB), counted before any
// authentication, so a label of it as sent would let anybody who reaches
// the port add series, each kept for the life of the process.
func MethodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "other"
}

// StatusRecorder remembers the status a handler wrote.
type StatusRecorder struct {
	http.ResponseWriter
	// Status is the code written, 200 until WriteHeader.
	Status int
	wrote  bool
}

// WriteHeader records the first status code and passes it on.
func (s *StatusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.Status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write marks the header written (200 unless set before).
func (s *StatusRecorder) Write(p []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(p) //nolint:wrapcheck // a pass-through writer
}

// Flush sends buffered data to the client, for handlers that assert
// http.Flusher (event streams) rather than use http.ResponseController.
func (s *StatusRecorder) Flush() {
	s.wrote = true
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection (flushing for
// event streams, deadlines).
func (s *StatusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
