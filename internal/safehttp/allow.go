package safehttp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// AllowList opens targets the guard refuses otherwise (HTTP_TASK_ALLOW). A
// nil *AllowList opens none.
//
// Entries, comma-separated:
//   - a CIDR (10.0.0.0/8, fd00::/8) or an IP address (10.1.2.3, ::1): any
//     port of those addresses;
//   - an IP address and port (127.0.0.1:8080, [::1]:8080): that port only;
//   - a hostname (hooks.internal): whatever addresses it resolves to, any
//     port. The name must be the URL's host exactly (case-insensitive);
//     it opens no other name, not even a subdomain;
//   - a hostname and port (localhost:8080): that port only.
//
// A hostname entry trusts the name's DNS: list names only from DNS you
// control.
type AllowList struct {
	prefixes  []netip.Prefix
	addrPorts map[netip.AddrPort]bool
	names     map[string]bool // "name" or "name:port", lower case
	entries   []string
}

// ParseAllowList parses HTTP_TASK_ALLOW. Empty means nil: nothing allowed.
func ParseAllowList(s string) (*AllowList, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil //nolint:nilnil // a nil *AllowList is the valid empty list
	}
	a := &AllowList{addrPorts: map[netip.AddrPort]bool{}, names: map[string]bool{}}
	var errs []error
	for raw := range strings.SplitSeq(s, ",") {
		entry := strings.TrimSpace(raw)
		if err := a.add(entry); err != nil {
			errs = append(errs, fmt.Errorf("%q: %w", entry, err))
			continue
		}
		a.entries = append(a.entries, entry)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *AllowList) add(entry string) error {
	if entry == "" {
		return errors.New("empty entry (two commas in a row?)")
	}
	if strings.Contains(entry, "/") {
		prefix, err := netip.ParsePrefix(entry)
		if err != nil {
			return errors.New("not a CIDR such as 10.0.0.0/8 or fd00::/8")
		}
		a.prefixes = append(a.prefixes, prefix.Masked())
		return nil
	}
	if addr, err := netip.ParseAddr(entry); err == nil {
		if addr.Zone() != "" {
			return errors.New("an address with a zone cannot be allowed")
		}
		addr = addr.Unmap()
		a.prefixes = append(a.prefixes, netip.PrefixFrom(addr, addr.BitLen()))
		return nil
	}
	if addrPort, err := netip.ParseAddrPort(entry); err == nil {
		a.addrPorts[netip.AddrPortFrom(addrPort.Addr().Unmap(), addrPort.Port())] = true
		return nil
	}
	name, port := entry, ""
	if h, p, err := net.SplitHostPort(entry); err == nil {
		name, port = h, p
		if !validPort(port) {
			return errors.New("the port must be a number from 1 to 65535")
		}
	}
	name = normalizeName(name)
	if !validHostname(name) {
		return errors.New("not a CIDR, an IP address, or a hostname (with an optional :port)")
	}
	if port != "" {
		name = net.JoinHostPort(name, port)
	}
	a.names[name] = true
	return nil
}

// String lists the entries as given.
func (a *AllowList) String() string {
	if a == nil {
		return ""
	}
	return strings.Join(a.entries, ",")
}

// allowsName reports whether the named host (before resolution) is listed,
// with any port or this one.
func (a *AllowList) allowsName(host, port string) bool {
	if a == nil || len(a.names) == 0 {
		return false
	}
	host = normalizeName(host)
	return a.names[host] || (port != "" && a.names[net.JoinHostPort(host, port)])
}

// allowsAddr reports whether a resolved address and port are listed.
func (a *AllowList) allowsAddr(addrPort netip.AddrPort) bool {
	if a == nil {
		return false
	}
	if a.addrPorts[addrPort] {
		return true
	}
	for _, p := range a.prefixes {
		if p.Contains(addrPort.Addr()) {
			return true
		}
	}
	return false
}

func normalizeName(name string) string {
	return strings.TrimSuffix(strings.ToLower(name), ".")
}

func validPort(port string) bool {
	n := 0
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
		if n > 65535 {
			return false
		}
	}
	return port != "" && n > 0
}

// validHostname accepts DNS names: labels of letters, digits, hyphens and
// underscores, 1-63 bytes each, 253 in all.
func validHostname(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}
