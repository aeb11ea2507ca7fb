package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/handoff/handoff/internal/metrics"
	"github.com/handoff/handoff/internal/telemetry"
)

// quietRoutes are polled by machines every few seconds: their request lines
// are logged at debug level, the rest at info.
var quietRoutes = map[string]bool{"GET /healthz": true, "GET /readyz": true, "GET /metrics": true}

// observe wraps the whole handler, outermost first: a trace span per request
// (when tracer is not nil; an incoming traceparent header continues the
// caller's trace), request metrics (when m is not nil), and one log line per
// request. Spans, metrics and log lines name the route pattern the mux
// matched ("GET /v1/tasks/{id}"), never the raw path; every mux must be
// wrapped in metrics.WithRoute for that.
func observe(logger *slog.Logger, m *metrics.Metrics, tracer trace.TracerProvider, next http.Handler) http.Handler {
	h := logRequest(logger, next)
	if m != nil {
		h = m.Instrument(h)
	}
	if tracer != nil {
		h = otelhttp.NewHandler(h, "http.request",
			otelhttp.WithTracerProvider(tracer),
			otelhttp.WithPropagators(telemetry.Propagator()),
		)
	}
	return h
}

// logRequest logs one line per request: method, route, path, status,
// duration, and the trace id when the request is traced.
func logRequest(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r = r.WithContext(metrics.ContextWithRouteHolder(r.Context()))
		rec := &metrics.StatusRecorder{ResponseWriter: w, Status: http.StatusOK}
		next.ServeHTTP(rec, r)

		route := metrics.RouteFromContext(r.Context())
		span := trace.SpanFromContext(r.Context())
		if route != "" {
			span.SetName(route)
			span.SetAttributes(attribute.String("http.route", route))
		}
		level := slog.LevelInfo
		switch {
		case rec.Status >= http.StatusInternalServerError:
			level = slog.LevelWarn
		case quietRoutes[route]:
			level = slog.LevelDebug
		}
		if !logger.Enabled(r.Context(), level) {
			return
		}
		attrs := []slog.Attr{
			slog.String("method", shownMethod(r.Method)),
			slog.String("route", route),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.Status),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
		}
		if sc := span.SpanContext(); sc.IsValid() {
			attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
		}
		logger.LogAttrs(r.Context(), level, "http request", attrs...)
	})
}
