package config_test

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/config"
)

func envFunc(env map[string]string) func(string) string {
	return func(name string) string { return env[name] }
}

// readmeRow is one row of the README's configuration table.
var readmeRow = regexp.MustCompile("^\\| `([A-Z0-9_]+)` \\| (.*) \\| (.*) \\|$")

// TestREADMETable keeps the README's table and the options table one: the
// same variables in the same order with the same defaults and meanings.
func TestREADMETable(t *testing.T) {
	t.Parallel()

	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n## Configuration\n")
	require.True(t, ok, "README.md has no ## Configuration section")
	section, _, _ = strings.Cut(section, "\n## ")

	var got, want []string
	for line := range strings.SplitSeq(section, "\n") {
		if m := readmeRow.FindStringSubmatch(line); m != nil {
			got = append(got, line)
		}
	}
	for _, o := range config.Options() {
		want = append(want, "| `"+o.Name+"` | "+o.Default+" | "+o.Meaning+" |")
	}
	require.Equal(t, want, got, "README.md's configuration table differs from internal/config's options; the table should read:\n%s", strings.Join(want, "\n"))
}

func TestParse(t *testing.T) {
	t.Parallel()

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		cfg, err := config.Parse(envFunc(map[string]string{"DATABASE_URL": "postgres://localhost/handoff"}))
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1:8080", cfg.HTTPAddr)
		require.Equal(t, 10, cfg.DBMaxConns)
		require.Empty(t, cfg.LogFormat, "unset: chosen by whether stderr is a terminal")
		require.Equal(t, config.Defaults().Workers, cfg.Workers)
	})

	t.Run("EveryErrorAtOnce", func(t *testing.T) {
		t.Parallel()
		_, err := config.Parse(envFunc(map[string]string{
			"WORKERS": "lots", "LOG_FORMAT": "xml", "ADMIN_USER": "ops", "METRICS_INTERVAL": "10ms",
			"QUEUES": "default=3", "FETCH_COOLDOWN": "1s", "FETCH_POLL_INTERVAL": "100ms",
			"LIVE_MAX_STREAMS": "20", "LIVE_MAX_STREAMS_PER_TENANT": "21",
		}))
		require.Error(t, err)
		for _, want := range []string{
			"DATABASE_URL is not set", `WORKERS="lots"`, `LOG_FORMAT="xml"`, "ADMIN_USER and ADMIN_PASSWORD",
			"METRICS_INTERVAL=10ms: must be at least 1s", "default queue's workers with WORKERS", "FETCH_POLL_INTERVAL=100ms",
			"LIVE_MAX_STREAMS_PER_TENANT=21: must not be more than LIVE_MAX_STREAMS=20",
		} {
			require.ErrorContains(t, err, want)
		}
	})
}

func TestPrintMasksSecrets(t *testing.T) {
	t.Parallel()

	env := envFunc(map[string]string{ //nolint:gosec // fake credentials, checked to be masked
		"DATABASE_URL":   "postgres://handoff:s3cret-pw@db.internal:5432/handoff?sslmode=verify-full&sslpassword=k3y-pass",
		"ADMIN_USER":     "ops",
		"ADMIN_PASSWORD": "hunter2-admin",
	})
	cfg, err := config.Parse(env)
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, config.Print(&out, env, cfg))

	require.NotContains(t, out.String(), "s3cret-pw")
	require.NotContains(t, out.String(), "hunter2-admin")
	require.NotContains(t, out.String(), "k3y-pass")
	require.Contains(t, out.String(), "DATABASE_URL=postgres://handoff:xxxxx@db.internal:5432/handoff?sslmode=verify-full&sslpassword=xxxxx\t# env\n")
	require.Contains(t, out.String(), "ADMIN_PASSWORD=(set, hidden)\t# env\n")
	require.Contains(t, out.String(), "ADMIN_USER=ops\t# env\n")
	require.Contains(t, out.String(), "HTTP_ADDR=127.0.0.1:8080\t# default\n")
	require.Equal(t, len(config.Options()), strings.Count(out.String(), "\n"), "one line per option")
}

// TestPrintComputedDefaults: an option whose default is computed from
// others prints the value serve uses, still marked as the default:
// RATE_BURST unset (or 0) as twice RATE_LIMIT; PUBLIC_URL unset as the URL
// serve reports progress to, from HTTP_ADDR with an unspecified host read
// as loopback; LIVE_MAX_STREAMS_PER_TENANT as nine tenths of
// LIVE_MAX_STREAMS.
func TestPrintComputedDefaults(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "RATE_BURST=2000\t# default\n"},
		{map[string]string{"RATE_LIMIT": "1000"}, "RATE_BURST=2000\t# default\n"},
		{map[string]string{"RATE_LIMIT": "50"}, "RATE_BURST=100\t# default\n"},
		{map[string]string{"RATE_LIMIT": "50", "RATE_BURST": "7"}, "RATE_BURST=7\t# env\n"},
		{map[string]string{"RATE_LIMIT": "0"}, "RATE_BURST=0\t# default\n"},
		{map[string]string{}, "PUBLIC_URL=http://127.0.0.1:8080\t# default\n"},
		{map[string]string{"HTTP_ADDR": ":9000", "AUTH_DISABLED": "false"}, "PUBLIC_URL=http://127.0.0.1:9000\t# default\n"},
		{map[string]string{"HTTP_ADDR": "0.0.0.0:9000", "AUTH_DISABLED": "false"}, "PUBLIC_URL=http://127.0.0.1:9000\t# default\n"},
		{map[string]string{"HTTP_ADDR": "[::1]:9000"}, "PUBLIC_URL=http://[::1]:9000\t# default\n"},
		{map[string]string{"PUBLIC_URL": "https://tasks.example.com"}, "PUBLIC_URL=https://tasks.example.com\t# env\n"},
		{map[string]string{}, "LIVE_MAX_STREAMS_PER_TENANT=9000\t# default\n"},
		{map[string]string{"LIVE_MAX_STREAMS": "5"}, "LIVE_MAX_STREAMS_PER_TENANT=4\t# default\n"},
		{map[string]string{"LIVE_MAX_STREAMS": "1"}, "LIVE_MAX_STREAMS_PER_TENANT=1\t# default\n"},
		{map[string]string{"LIVE_MAX_STREAMS_PER_TENANT": "12"}, "LIVE_MAX_STREAMS_PER_TENANT=12\t# env\n"},
	} {
		tc.env["DATABASE_URL"] = "postgres://localhost/handoff"
		env := envFunc(tc.env)
		cfg, err := config.Parse(env)
		require.NoError(t, err, tc.env)
		var out bytes.Buffer
		require.NoError(t, config.Print(&out, env, cfg))
		require.Contains(t, out.String(), tc.want, tc.env)
	}
}

func TestMaskPassword(t *testing.T) {
	t.Parallel()

	for in, want := range map[string]string{ //nolint:gosec // fake credentials, checked to be masked
		"postgres://u:pw@h/db":                         "postgres://u:xxxxx@h/db",
		"postgres://u@h/db?password=pw&sslmode=verify": "postgres://u@h/db?password=xxxxx&sslmode=verify",
		"host=h user=u password=pw dbname=db":          "host=h user=u password=xxxxx dbname=db",
		"host=h password='p w' dbname=db":              "host=h password=xxxxx dbname=db",
		"postgres://u@h/db":                            "postgres://u@h/db",
		// sslpassword, the passphrase of the client key, in either form.
		"postgres://u@h/db?sslkey=/k.pem&sslpassword=kpw&sslmode=verify-full":          "postgres://u@h/db?sslkey=%2Fk.pem&sslmode=verify-full&sslpassword=xxxxx",
		"postgres://u:pw@h/db?password=pw2&sslpassword=kpw":                            "postgres://u:xxxxx@h/db?password=xxxxx&sslpassword=xxxxx",
		"postgres://u@h/db?SSLPassword=kpw":                                            "postgres://u@h/db?SSLPassword=xxxxx",
		"host=h sslkey=/k.pem sslpassword=kpw sslmode=verify-full":                     "host=h sslkey=/k.pem sslpassword=xxxxx sslmode=verify-full",
		"host=h password = 'p\\'w' sslpassword='k pw' dbname=db":                       "host=h password = xxxxx sslpassword=xxxxx dbname=db",
		"postgresql://u@h/db?sslmode=require&sslpassword=kpw&application_name=handoff": "postgresql://u@h/db?application_name=handoff&sslmode=require&sslpassword=xxxxx",
	} {
		got := config.MaskPassword(in)
		require.Equal(t, want, got, in)
		require.NotContains(t, got, "kpw", in)
	}
}
