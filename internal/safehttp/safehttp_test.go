package safehttp

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// errAborted is what the recording hook returns to stop a dial that the
// guard let through before it connects, so that no packet leaves for a
// non-loopback address.
var errAborted = errors.New("aborted by the test before connect")

// recorder records every address the guard let through to the connect.
type recorder struct {
	mu        sync.Mutex
	addresses []string
	abort     bool
}

func (r *recorder) beforeConnect(_, address string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addresses = append(r.addresses, address)
	if r.abort {
		return errAborted
	}
	return nil
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.addresses...)
}

func newClient(t *testing.T, allow string, rec *recorder) *http.Client {
	t.Helper()
	list, err := ParseAllowList(allow)
	require.NoError(t, err)
	return newClientFor(t, NewTransport(&Options{Allow: list, beforeConnectFunc: rec.beforeConnect}))
}

func newClientFor(t *testing.T, transport *http.Transport) *http.Client {
	t.Helper()
	t.Cleanup(transport.CloseIdleConnections)
	return &http.Client{Transport: transport}
}

func get(t *testing.T, client *http.Client, target string) (int, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
	require.NoError(t, err)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// server is a receiver on a loopback address that counts its requests.
type server struct {
	*httptest.Server
	hits atomic.Int64
	port string
}

func newServer(t *testing.T, network, address string, handler http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), network, address)
	require.NoError(t, err)
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		handler(w, r)
	}))
	s.Listener = ln
	s.Start()
	t.Cleanup(s.Close)
	_, s.port, err = net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)
	return s
}

func ok(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }

func TestClassify(t *testing.T) {
	t.Parallel()

	for _, refused := range []string{
		"127.0.0.1", "127.1.2.3", "::1", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1",
		"169.254.169.254", "169.254.0.1", "fe80::1", "fd00::1", "fc00::1", "fd00:ec2::254",
		"100.64.0.1", "100.100.100.200", "0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
		"64:ff9b::a00:1", "2002:7f00:1::", "192.0.2.1", "198.18.0.1", "fe80::1%eth0", "::ffff:7f00:1",
	} {
		require.NotEmpty(t, Classify(netip.MustParseAddr(refused)), refused)
	}
	for _, public := range []string{"8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"} {
		require.Empty(t, Classify(netip.MustParseAddr(public)), public)
	}
}

// TestRefusedBeforeConnect is the SSRF guard's proof: without an
// allow-list, each target is refused by the dial hook, which runs after DNS
// resolution and before connect, so the recording hook placed after it
// (just before the connect) never runs; listed, each passes the guard.
// Non-loopback targets that pass are aborted by the recording hook before
// their connect: only loopback is ever contacted.
func TestRefusedBeforeConnect(t *testing.T) {
	t.Parallel()

	v4 := newServer(t, "tcp", "127.0.0.1:0", ok)
	v6 := newServer(t, "tcp6", "[::1]:0", ok)

	cases := []struct {
		name   string
		url    string
		allow  string // an entry that opens it
		reason string
		local  bool // a real loopback receiver answers once allowed
	}{
		{name: "Loopback", url: "http://127.0.0.1:" + v4.port + "/", allow: "127.0.0.1", reason: "loopback", local: true},
		{name: "LoopbackIPv6", url: "http://[::1]:" + v6.port + "/", allow: "::1/128", reason: "loopback", local: true},
		{name: "LoopbackIPv4Mapped", url: "http://[::ffff:127.0.0.1]:" + v4.port + "/", allow: "127.0.0.0/8", reason: "loopback", local: true},
		{name: "HostnameResolvingToLoopback", url: "http://localhost:" + v4.port + "/", allow: "localhost", reason: "loopback", local: true},
		{name: "Private", url: "http://10.0.0.1/", allow: "10.0.0.0/8", reason: "private (RFC 1918)"},
		{name: "Metadata", url: "http://169.254.169.254/latest/meta-data/", allow: "169.254.169.254", reason: "link-local (cloud metadata)"},
		{name: "UniqueLocal", url: "http://[fd00::1]/", allow: "fd00::/8", reason: "unique-local"},
		{name: "CGNAT", url: "http://100.64.0.1:8080/", allow: "100.64.0.1:8080", reason: "carrier-grade NAT (RFC 6598)"},
		{name: "Unspecified", url: "http://0.0.0.0:" + v4.port + "/", allow: "0.0.0.0", reason: "\"this network\" (unspecified)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			rec := &recorder{abort: !tc.local}
			_, err := get(t, newClient(t, "", rec), tc.url)
			var refused *RefusedError
			require.ErrorAs(t, err, &refused)
			require.Equal(t, tc.reason, refused.Reason)
			require.True(t, IsRefused(err))
			require.Contains(t, err.Error(), "HTTP_TASK_ALLOW")
			require.Empty(t, rec.seen(), "a refused address must never reach the connect")

			// Listed: the guard lets it through.
			rec = &recorder{abort: !tc.local}
			status, err := get(t, newClient(t, tc.allow, rec), tc.url)
			require.NotEmpty(t, rec.seen(), "an allowed address reaches the connect")
			if tc.local {
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, status)
				return
			}
			require.ErrorIs(t, err, errAborted)
			require.False(t, IsRefused(err))
		})
	}
}

func TestRedirectTargetsChecked(t *testing.T) {
	t.Parallel()

	for name, location := range map[string]func(targetPort string) string{
		"ToLoopback":  func(port string) string { return "http://127.0.0.1:" + port + "/" },
		"ToLocalhost": func(port string) string { return "http://localhost:" + port + "/" },
		"ToMetadata":  func(string) string { return "http://169.254.169.254/latest/meta-data/" },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()

			// The redirecting server is allowed by its address and port
			// only; where it sends the client is checked again.
			target := newServer(t, "tcp", "127.0.0.1:0", ok)
			to := location(target.port)
			redirector := newServer(t, "tcp", "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, to, http.StatusFound)
			})
			rec := &recorder{}
			_, err := get(t, newClient(t, "127.0.0.1:"+redirector.port, rec), redirector.URL)
			var refused *RefusedError
			require.ErrorAs(t, err, &refused)
			var urlErr *url.Error
			require.ErrorAs(t, err, &urlErr)
			require.Equal(t, to, urlErr.URL, "the redirect target is what was refused")
			require.Equal(t, int64(1), redirector.hits.Load())
			require.Equal(t, []string{"127.0.0.1:" + redirector.port}, rec.seen(), "only the allowed redirector was connected to")
			require.Zero(t, target.hits.Load(), "the target saw nothing")
		})
	}

	t.Run("AllowedOnceListed", func(t *testing.T) {
		t.Parallel()

		target := newServer(t, "tcp", "127.0.0.1:0", ok)
		redirector := newServer(t, "tcp", "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://localhost:"+target.port+"/", http.StatusFound)
		})
		status, err := get(t, newClient(t, "127.0.0.1:"+redirector.port+", localhost:"+target.port, &recorder{}), redirector.URL)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, int64(1), target.hits.Load())
	})
}

func TestAllowListScope(t *testing.T) {
	t.Parallel()

	s := newServer(t, "tcp", "127.0.0.1:0", ok)
	for _, tc := range []struct {
		allow, url string
		allowed    bool
	}{
		{"localhost", "http://localhost:" + s.port + "/", true},
		{"LOCALHOST.", "http://localhost:" + s.port + "/", true},
		{"localhost", "http://127.0.0.1:" + s.port + "/", false},              // a name opens that name only
		{"localhost:1", "http://localhost:" + s.port + "/", false},            // and only its port
		{"127.0.0.1:1", "http://127.0.0.1:" + s.port + "/", false},            // an address and port, that port only
		{"127.0.0.1:" + s.port, "http://localhost:" + s.port + "/", true},     // an address, whatever name reaches it
		{"sub.localhost", "http://localhost:" + s.port + "/", false},          // no parent names
		{"10.0.0.0/8, 127.0.0.0/8", "http://127.0.0.1:" + s.port + "/", true}, // several entries
	} {
		_, err := get(t, newClient(t, tc.allow, &recorder{}), tc.url)
		if tc.allowed {
			require.NoError(t, err, "allow %q, %s", tc.allow, tc.url)
		} else {
			require.True(t, IsRefused(err), "allow %q, %s: %v", tc.allow, tc.url, err)
		}
	}
}

func TestParseAllowList(t *testing.T) {
	t.Parallel()

	list, err := ParseAllowList("")
	require.NoError(t, err)
	require.Nil(t, list)

	list, err = ParseAllowList(" 10.0.0.0/8 , fd00::/8,192.168.1.7, [::1]:8080, hooks.internal, localhost:9000 ")
	require.NoError(t, err)
	require.Equal(t, "10.0.0.0/8,fd00::/8,192.168.1.7,[::1]:8080,hooks.internal,localhost:9000", list.String())
	require.True(t, list.allowsAddr(netip.MustParseAddrPort("10.9.8.7:443")))
	require.True(t, list.allowsAddr(netip.MustParseAddrPort("[::1]:8080")))
	require.False(t, list.allowsAddr(netip.MustParseAddrPort("[::1]:8081")))
	require.True(t, list.allowsName("HOOKS.internal", "443"))
	require.True(t, list.allowsName("localhost", "9000"))
	require.False(t, list.allowsName("localhost", "9001"))

	// Every bad entry is reported at once.
	_, err = ParseAllowList("10.0.0.0/33,,bad host,localhost:0,-x.example, ok.example")
	require.Error(t, err)
	for _, bad := range []string{`"10.0.0.0/33"`, `""`, `"bad host"`, `"localhost:0"`, `"-x.example"`} {
		require.Contains(t, err.Error(), bad)
	}
	require.NotContains(t, err.Error(), "ok.example")
}

func TestTransportUsesNoProxy(t *testing.T) {
	t.Parallel()

	// A proxy would dial the target itself, past the guard.
	require.Nil(t, NewTransport(nil).Proxy)
	require.Equal(t, "refused to connect to 127.0.0.1: a loopback address (list it in HTTP_TASK_ALLOW to allow it)",
		(&RefusedError{Host: "127.0.0.1", Addr: netip.MustParseAddr("127.0.0.1"), Reason: "loopback"}).Error())
	require.True(t, strings.HasPrefix((&RefusedError{Host: "localhost", Addr: netip.MustParseAddr("::1"), Reason: "loopback"}).Error(),
		"refused to connect to localhost at ::1"))
}
