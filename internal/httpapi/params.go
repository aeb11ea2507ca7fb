package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/handoff/handoff/internal/jsonstrict"
)

// queryParams parses the query string strictly: each parameter must be one
// this endpoint takes (allowed), given at most once, with valid
// percent-encoding. net/http's r.URL.Query() drops what it cannot parse and
// keeps the first of repeated values, which would leave a client with a
// mangled cursor looping over page one.
func queryParams(r *http.Request, allowed ...string) (map[string]string, error) {
	params := map[string]string{}
	if r.URL.RawQuery == "" {
		return params, nil
	}
	for pair := range strings.SplitSeq(r.URL.RawQuery, "&") {
		if pair == "" {
			continue
		}
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			return nil, badRequest(fmt.Sprintf("query parameter %s is not valid percent-encoding", jsonstrict.Quote(rawName)))
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return nil, badRequest(fmt.Sprintf("query parameter %s: its value %s is not valid percent-encoding", jsonstrict.Quote(name), jsonstrict.Quote(rawValue)))
		}
		if !slices.Contains(allowed, name) {
			if len(allowed) == 0 {
				return nil, badRequest(fmt.Sprintf("unknown query parameter %s: this endpoint takes none", jsonstrict.Quote(name)))
			}
			return nil, badRequest(fmt.Sprintf("unknown query parameter %s: this endpoint takes %s", jsonstrict.Quote(name), strings.Join(allowed, ", ")))
		}
		if _, seen := params[name]; seen {
			return nil, badRequest(fmt.Sprintf("query parameter %s is given more than once; give it once", jsonstrict.Quote(name)))
		}
		params[name] = value
	}
	return params, nil
}
