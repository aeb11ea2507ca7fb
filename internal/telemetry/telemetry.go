// Package telemetry sets up OpenTelemetry tracing: a TracerProvider with the
// exporter OTEL_TRACES_EXPORTER names (off by default), and the River
// middleware (otelriver) that carries a trace from the request that enqueued
// a task to the spans of its attempts.
//
// The work span is linked to the enqueuing span, not its child: an attempt
// may run long after the request has ended, on another replica, and a task
// has up to max_attempts of them; as children they would stretch the
// request's trace over hours and mix every retry into it. A link keeps each
// attempt its own trace that still leads back to the request (OpenTelemetry's
// messaging conventions do the same for a consumer of a queued message).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/riverqueue/river/rivertype"
	"github.com/riverqueue/rivercontrib/otelriver"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// ServiceName is the service.name of Handoff's spans unless
// OTEL_SERVICE_NAME says otherwise.
const ServiceName = "handoff"

// Tracing is a TracerProvider and how to flush it on exit.
type Tracing struct {
	// Provider makes Handoff's tracers; a no-op when tracing is off.
	Provider trace.TracerProvider
	// Enabled reports whether spans are exported.
	Enabled bool

	shutdown func(context.Context) error
}

// Shutdown flushes spans not yet exported and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// New returns tracing for exporter: "none" (or empty) turns it off, "otlp"
// sends spans over OTLP/HTTP to where the standard OTEL_EXPORTER_OTLP_*
// variables point (default http://localhost:4318), sampled as
// OTEL_TRACES_SAMPLER says (default: every trace whose parent is sampled,
// and every new one).
func New(ctx context.Context, exporter string) (*Tracing, error) {
	switch exporter {
	case "", "none":
		return &Tracing{Provider: tracenoop.NewTracerProvider()}, nil
	case "otlp":
		exp, err := otlptracehttp.New(ctx, exporterOptions(os.Getenv)...)
		if err != nil {
			return nil, fmt.Errorf("create OTLP trace exporter: %w", err)
		}
		return NewWithExporter(ctx, sdktrace.WithBatcher(exp))
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: Handoff supports otlp or none", exporter)
	}
}

// tlsChoices are the variables with which an operator chooses the OTLP
// exporter's endpoint or transport security: any of them set, the SDK's
// reading of them stands.
var tlsChoices = []string{
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
	"OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
	"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
}

// exporterOptions are the OTLP exporter's options beyond what the SDK reads
// from the environment itself. With no endpoint and no transport security
// chosen (tlsChoices), the exporter is told to send plain HTTP: the specification's default
// endpoint is http://localhost:4318 (a collector beside the process), but
// the Go SDK's is https://, so that spans never reached such a collector.
func exporterOptions(getenv func(string) string) []otlptracehttp.Option {
	for _, name := range tlsChoices {
		if getenv(name) != "" {
			return nil
		}
	}
	return []otlptracehttp.Option{otlptracehttp.WithInsecure()}
}

// NewWithExporter returns tracing that sends spans through the given span
// processor option (sdktrace.WithBatcher or WithSyncer); tests pass an
// in-memory exporter.
func NewWithExporter(ctx context.Context, processor sdktrace.TracerProviderOption) (*Tracing, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(ServiceName)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	provider := sdktrace.NewTracerProvider(processor, sdktrace.WithResource(res))
	return &Tracing{Provider: provider, Enabled: true, shutdown: provider.Shutdown}, nil
}

// Propagator reads and writes W3C trace context (traceparent, tracestate).
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// RiverMiddleware returns otelriver's middleware on t's provider: an insert
// span, and a work span per attempt linked to the span that enqueued the
// task (its trace context travels in the job's metadata). Its OpenTelemetry
// metrics are off: /metrics has Handoff's own.
func (t *Tracing) RiverMiddleware() rivertype.Middleware {
	return otelriver.NewMiddleware(&otelriver.MiddlewareConfig{
		EnableTracePropagation:      true,
		EnableWorkSpanJobKindSuffix: true,
		MeterProvider:               noop.NewMeterProvider(),
		TracerProvider:              t.Provider,
	})
}
