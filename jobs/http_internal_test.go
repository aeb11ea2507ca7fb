package jobs

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRetryAfter(t *testing.T) {
	t.Parallel()

	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for header, want := range map[string]time.Duration{
		"2":                 2 * time.Second,
		"120":               2 * time.Minute,
		"0":                 time.Second, // at least a second: no hot loop
		"86400":             HTTPMaxRetryAfter,
		"99999999999999999": HTTPMaxRetryAfter,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       time.Second,
		now.Add(48 * time.Hour).Format(http.TimeFormat):   HTTPMaxRetryAfter,
	} {
		got, ok := retryAfter(header, now)
		require.True(t, ok, header)
		require.Equal(t, want, got, header)
	}
	for _, bad := range []string{"", "-1", "soon", "1.5"} {
		_, ok := retryAfter(bad, now)
		require.False(t, ok, bad)
	}
}

func TestTrimPartialRune(t *testing.T) {
	t.Parallel()

	full := []byte("aé世🙂")
	for cut := range len(full) + 1 {
		got := trimPartialRune(full[:cut])
		require.LessOrEqual(t, len(got), cut)
		require.Equal(t, string(full[:len(got)]), string(got))
		require.Equal(t, string(got), string([]rune(string(got))), "cut at %d leaves whole characters", cut)
	}
	require.Equal(t, "aé", string(trimPartialRune([]byte("aé\xe4\xb8"))))
	require.Equal(t, "aé世", string(trimPartialRune([]byte("aé世"))))
}

func TestStatusError(t *testing.T) {
	t.Parallel()

	long := make([]byte, 2*httpErrorExcerptBytes)
	for i := range long {
		long[i] = 'x'
	}
	msg := statusError(HTTPResult{Status: 502, Body: string(long)})
	require.Equal(t, "HTTP 502 Bad Gateway: "+string(long[:httpErrorExcerptBytes])+"...", msg)
	require.Equal(t, "HTTP 503 Service Unavailable", statusError(HTTPResult{Status: 503, Body: " \n"}))
}
