// Package dburl points a Postgres connection string at another database. It
// is shared by internal/pgtest (test-only) and cmd/bench, which must not
// import test helpers.
package dburl

import (
	"fmt"
	"net/url"
	"strings"
)

// WithDatabase points base, a URL or keyword/value connection string, at the
// database name.
func WithDatabase(base, name string) (string, error) {
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		// In keyword/value form a later keyword overrides an earlier one.
		return base + " dbname=" + name, nil
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	u.Path = "/" + name
	u.RawPath = ""
	query := u.Query()
	query.Del("dbname") // It would override the path.
	u.RawQuery = query.Encode()
	return u.String(), nil
}
