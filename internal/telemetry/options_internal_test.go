package telemetry

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestExporterOptions: plain HTTP is added only when the operator chose
// neither an endpoint nor any transport security; any such choice is the
// SDK's to read.
func TestExporterOptions(t *testing.T) {
	t.Parallel()
	require.Len(t, exporterOptions(func(string) string { return "" }), 1, "nothing set: the specification's http://localhost:4318")
	for _, name := range tlsChoices {
		env := map[string]string{name: "set"}
		require.Empty(t, exporterOptions(func(k string) string { return env[k] }), name)
	}
	env := map[string]string{"OTEL_SERVICE_NAME": "x", "OTEL_EXPORTER_OTLP_HEADERS": "a=b"}
	require.Len(t, exporterOptions(func(k string) string { return env[k] }), 1, "other variables leave the default")
}
