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
			return nil, paramError(rawName, "is not valid percent-encoding",
				fmt.Sprintf("query parameter %s is not valid percent-encoding", jsonstrict.Quote(rawName)))
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return nil, paramError(name, "its value is not valid percent-encoding",
				fmt.Sprintf("query parameter %s: its value %s is not valid percent-encoding", jsonstrict.Quote(name), jsonstrict.Quote(rawValue)))
		}
		if !slices.Contains(allowed, name) {
			if len(allowed) == 0 {
				return nil, paramError(name, "unknown query parameter",
					fmt.Sprintf("unknown query parameter %s: this endpoint takes none", jsonstrict.Quote(name)))
			}
			return nil, paramError(name, "unknown query parameter",
				fmt.Sprintf("unknown query parameter %s: this endpoint takes %s", jsonstrict.Quote(name), strings.Join(allowed, ", ")))
		}
		if _, seen := params[name]; seen {
			return nil, paramError(name, "is given more than once",
				fmt.Sprintf("query parameter %s is given more than once; give it once", jsonstrict.Quote(name)))
		}
		params[name] = value
	}
	return params, nil
}

// paramError is a 400 about one query parameter: detail for a person, and
// msg under the parameter's name in the problem's errors (the name cut as
// every echoed value is).
func paramError(name, msg, detail string) error {
	return &requestError{
		status: http.StatusBadRequest,
		detail: detail,
		fields: map[string]string{jsonstrict.Shorten(name): msg},
	}
}
