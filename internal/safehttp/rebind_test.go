package safehttp

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// rebindingResolver is a DNS server in memory that answers each A query
// for any name with the next address of answers (the last one repeats),
// the way a rebinding attacker's DNS answers a public address first and a
// private one next. AAAA queries get no answer.
func rebindingResolver(t *testing.T, answers ...netip.Addr) *net.Resolver {
	t.Helper()
	var n atomic.Int64
	return &net.Resolver{
		PreferGo: true,
		Dial: func(context.Context, string, string) (net.Conn, error) {
			client, server := net.Pipe()
			go func() {
				defer server.Close()
				// Not a PacketConn, so Go speaks DNS over a stream: each
				// message after its 2-byte length.
				for {
					var size [2]byte
					if _, err := io.ReadFull(server, size[:]); err != nil {
						return
					}
					query := make([]byte, binary.BigEndian.Uint16(size[:]))
					if _, err := io.ReadFull(server, query); err != nil {
						return
					}
					var addr netip.Addr
					if qtype := dnsQueryType(query); qtype == 1 {
						i := min(int(n.Add(1))-1, len(answers)-1)
						addr = answers[i]
					}
					resp := dnsAnswer(query, addr)
					binary.BigEndian.PutUint16(size[:], uint16(len(resp))) //nolint:gosec // a few dozen bytes
					if _, err := server.Write(append(size[:], resp...)); err != nil {
						return
					}
				}
			}()
			return client, nil
		},
	}
}

// dnsQueryType reads the type of a query's one question.
func dnsQueryType(query []byte) uint16 {
	i := 12
	for i < len(query) && query[i] != 0 {
		i += int(query[i]) + 1
	}
	if i+3 > len(query) {
		return 0
	}
	return binary.BigEndian.Uint16(query[i+1 : i+3])
}

// dnsAnswer answers query with addr as its one A record, or with no record
// when addr is not valid.
func dnsAnswer(query []byte, addr netip.Addr) []byte {
	i := 12
	for i < len(query) && query[i] != 0 {
		i += int(query[i]) + 1
	}
	question := query[12 : i+5]
	resp := make([]byte, 12, 64)
	copy(resp, query[:2])                        // id
	binary.BigEndian.PutUint16(resp[2:], 0x8180) // response, recursion desired and available
	binary.BigEndian.PutUint16(resp[4:], 1)      // one question
	resp = append(resp, question...)
	if !addr.IsValid() {
		return resp
	}
	binary.BigEndian.PutUint16(resp[6:], 1) // one answer
	ip := addr.As4()
	resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4) // name at 12, A, IN, TTL 0, 4 bytes
	return append(resp, ip[:]...)
}

// TestDNSRebindingRefused: the guard checks the address each connection
// dials, not a name checked earlier. A name that first resolves to a
// public address (let through the guard, then stopped by the test before
// connect) and then to loopback is refused the second time, before
// connect.
func TestDNSRebindingRefused(t *testing.T) {
	t.Parallel()

	rec := &recorder{abort: true}
	transport := NewTransport(&Options{
		Resolver:          rebindingResolver(t, netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("127.0.0.1")),
		beforeConnectFunc: rec.beforeConnect,
	})
	transport.DisableKeepAlives = true
	client := newClientFor(t, transport)

	_, err := get(t, client, "http://rebind.example/")
	require.ErrorIs(t, err, errAborted, "the public answer passes the guard")
	require.Equal(t, []string{"93.184.216.34:80"}, rec.seen())

	_, err = get(t, client, "http://rebind.example/")
	var refused *RefusedError
	require.ErrorAs(t, err, &refused)
	require.Equal(t, "rebind.example", refused.Host)
	require.Equal(t, netip.MustParseAddr("127.0.0.1"), refused.Addr)
	require.Equal(t, []string{"93.184.216.34:80"}, rec.seen(), "the loopback answer never reached the connect")
}
