// Package safehttp is an HTTP transport for requests to URLs that users
// choose: it refuses to connect to loopback, private, link-local,
// unique-local, carrier-grade NAT, multicast, unspecified and other
// non-public addresses (cloud metadata services among them) unless an
// AllowList opens them.
//
// The check runs at dial time, on the address actually dialled, after DNS
// resolution (net.Dialer's ControlContext hook, which runs after the socket
// is created and before connect): a hostname that resolves, or is rebound,
// to a refused address is refused, and so is every redirect target, since
// each new connection is dialled through the same hook. A refused address
// never receives a packet. The transport uses no proxy: a proxy would dial
// the target itself, out of the hook's reach.
package safehttp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// RefusedError is the error of a dial to an address the guard refuses. The
// transport returns it wrapped (in *net.OpError and *url.Error): find it
// with errors.As.
type RefusedError struct {
	// Host is the host the request named, as in its URL.
	Host string
	// Addr is the address it resolved to and that was refused.
	Addr netip.Addr
	// Reason names the address's range, e.g. "loopback".
	Reason string
	// Port is the port dialled; 0 when unknown.
	Port uint16
}

func (e *RefusedError) Error() string {
	at := e.Addr.String()
	if e.Port != 0 {
		// The port matters: an allow-list entry may name another one.
		at = netip.AddrPortFrom(e.Addr, e.Port).String()
	}
	if e.Host == e.Addr.String() {
		return fmt.Sprintf("refused to connect to %s: a %s address (list it in HTTP_TASK_ALLOW to allow it)", at, e.Reason)
	}
	return fmt.Sprintf("refused to connect to %s at %s: a %s address (list it in HTTP_TASK_ALLOW to allow it)", e.Host, at, e.Reason)
}

// blocked lists the ranges refused unless allowed, with what each is. An
// IPv4-mapped IPv6 address (::ffff:a.b.c.d) is checked as its IPv4 address.
var blocked = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\" (unspecified)"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private (RFC 1918)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT (RFC 6598)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (cloud metadata)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private (RFC 1918)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private (RFC 1918)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (incl. broadcast)"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible (deprecated)"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64 (reaches IPv4 through a gateway)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("2002::/16"), "6to4 (reaches IPv4 through a gateway)"},
	{netip.MustParsePrefix("fc00::/7"), "unique-local"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local (deprecated)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// Classify returns why addr is refused, or "" for a public address.
func Classify(addr netip.Addr) string {
	// A zone (fe80::1%eth0) would make every prefix miss.
	addr = addr.Unmap().WithZone("")
	if !addr.IsValid() {
		return "invalid"
	}
	for _, b := range blocked {
		if b.prefix.Contains(addr) {
			return b.reason
		}
	}
	if !addr.IsGlobalUnicast() {
		return "non-unicast"
	}
	return ""
}

// Options configure NewTransport. A nil *Options is the defaults.
type Options struct {
	// Allow opens targets the guard refuses otherwise. Nil opens none.
	Allow *AllowList

	// DialTimeout bounds one connect. Default 10 s; a request's context may
	// end it sooner.
	DialTimeout time.Duration

	// MaxResponseHeaderBytes bounds a response's headers. Default 64 KiB.
	MaxResponseHeaderBytes int64

	// Resolver resolves hostnames. Nil is net.DefaultResolver. Whatever it
	// answers, the guard checks the address dialled.
	Resolver *net.Resolver

	// beforeConnectFunc, for tests, runs after the guard passed an address
	// and before the connect; an error it returns aborts the dial.
	beforeConnectFunc func(network, address string) error
}

// NewTransport returns an http.Transport whose every connection is dialled
// through the guard. It uses no proxy (the environment's HTTP_PROXY is
// ignored) and no connection it did not check.
func NewTransport(opts *Options) *http.Transport {
	if opts == nil {
		opts = &Options{}
	}
	dialTimeout := opts.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = 10 * time.Second
	}
	maxHeader := opts.MaxResponseHeaderBytes
	if maxHeader <= 0 {
		maxHeader = 64 << 10
	}
	g := &guard{allow: opts.Allow, beforeConnectFunc: opts.beforeConnectFunc}
	dialer := &net.Dialer{
		Timeout:         dialTimeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second},
		ControlContext:  g.control,
		Resolver:        opts.Resolver,
	}
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			return dialer.DialContext(g.withTarget(ctx, address), network, address)
		},
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    10,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		ResponseHeaderTimeout:  0, // the request's own timeout bounds it
		MaxResponseHeaderBytes: maxHeader,
	}
}

// guard decides, per dialled address, whether to connect.
type guard struct {
	allow             *AllowList
	beforeConnectFunc func(network, address string) error
}

type targetKey struct{}

// target is what the dial knows before DNS resolution: the host and port
// the request named, and whether the allow-list opens that name.
type target struct {
	host, port  string
	nameAllowed bool
}

// withTarget records the named host in the dial's context, where control
// finds it next to the resolved address.
func (g *guard) withTarget(ctx context.Context, address string) context.Context {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		host = address
	}
	return context.WithValue(ctx, targetKey{}, target{host: host, port: port, nameAllowed: g.allow.allowsName(host, port)})
}

// control runs after the socket is created and before it connects, with
// the resolved address: an error here means no packet reaches the target.
func (g *guard) control(ctx context.Context, network, address string, _ syscall.RawConn) error {
	if network != "tcp" && network != "tcp4" && network != "tcp6" {
		return fmt.Errorf("refused to dial network %q: only TCP is allowed", network)
	}
	addrPort, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refused to dial %q: not an IP address and port", address)
	}
	addr := addrPort.Addr().Unmap().WithZone("")
	t, _ := ctx.Value(targetKey{}).(target)
	if t.host == "" {
		t.host = addr.String()
	}
	if !t.nameAllowed && !g.allow.allowsAddr(netip.AddrPortFrom(addr, addrPort.Port())) {
		if reason := Classify(addr); reason != "" {
			return &RefusedError{Host: t.host, Addr: addr, Reason: reason, Port: addrPort.Port()}
		}
	}
	if g.beforeConnectFunc != nil {
		return g.beforeConnectFunc(network, address)
	}
	return nil
}

// IsRefused reports whether err, or an error it wraps, is a *RefusedError.
func IsRefused(err error) bool {
	var refused *RefusedError
	return errors.As(err, &refused)
}
