package task

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/jobs"
)

// TestMatchResults: rows returned out of order are matched to their
// requests by content, tenant and key included; rows that match no request
// are refused.
func TestMatchResults(t *testing.T) {
	t.Parallel()
	v := NewValidator(jobs.Kinds(jobs.Deps{}), nil, nil)
	runAt := time.Now().Add(time.Hour)
	var ps []*Prepared
	for _, req := range []CreateRequest{
		{Kind: "noop", Tenant: "a"},
		{Kind: "noop", Tenant: "b"},
		{Kind: "noop", Tenant: "a", IdempotencyKey: `k<"1">`},
		{Kind: "sleep", Args: json.RawMessage(`{"seconds": 2}`), Tenant: "a", RunAt: &runAt, CallbackURL: "https://x.example/cb"},
		{Kind: "sleep", Args: json.RawMessage(`{"seconds": 3}`), Tenant: "a"},
	} {
		p, err := v.Prepare(req)
		require.NoError(t, err)
		ps = append(ps, p)
	}
	params := make([]river.InsertManyParams, len(ps))
	rows := make([]*rivertype.JobInsertResult, len(ps))
	for i, p := range ps {
		opts := p.insertOpts()
		params[i] = river.InsertManyParams{Args: p.Args, InsertOpts: opts}
		// As Postgres returns it: jsonb's spacing and key order, plus the
		// request hash the trigger adds.
		var meta map[string]any
		require.NoError(t, json.Unmarshal(opts.Metadata, &meta))
		meta["handoff_request_hash"] = "00ff"
		rows[i] = &rivertype.JobInsertResult{Job: &rivertype.JobRow{
			ID: int64(100 + i), Kind: p.Kind, Queue: opts.Queue, Priority: opts.Priority, MaxAttempts: opts.MaxAttempts,
			EncodedArgs: jsonbText(t, p.EncodedArgs), Metadata: jsonbText(t, mustJSON(t, meta)),
		}}
	}

	got, ok := matchResults(ps, params, rows)
	require.True(t, ok)
	for i := range ps {
		require.Equal(t, int64(100+i), got[i].Job.ID, "in order")
	}

	reversed := make([]*rivertype.JobInsertResult, len(rows))
	for i, r := range rows {
		reversed[len(rows)-1-i] = r
	}
	got, ok = matchResults(ps, params, reversed)
	require.True(t, ok)
	for i := range ps {
		require.Equal(t, int64(100+i), got[i].Job.ID, "request %d gets its own row back", i)
	}

	// The keyed row is not the unkeyed request's of the same tenant.
	require.False(t, sameRow(ps[0], params[0].InsertOpts, rows[2].Job, true))
	require.True(t, sameRow(ps[2], params[2].InsertOpts, rows[2].Job, true))

	// Args as Postgres writes them back may not decode in Go as sent (a
	// number beyond float64: jsonb spells 1e400 out in 401 digits). In
	// order, the row is still the request's: it was committed, and must
	// not be answered as an error.
	spelled := *rows[4].Job
	spelled.EncodedArgs = []byte(`{"seconds": 1` + strings.Repeat("0", 400) + `}`)
	got, ok = matchResults(ps, params, []*rivertype.JobInsertResult{rows[0], rows[1], rows[2], rows[3], {Job: &spelled}})
	require.True(t, ok)
	require.Equal(t, int64(104), got[4].Job.ID)

	_, ok = matchResults(ps, params, rows[:len(rows)-1])
	require.False(t, ok, "a row missing")
	other := *rows[1].Job
	other.Metadata = []byte(`{"handoff_tenant": "c"}`)
	_, ok = matchResults(ps, params, []*rivertype.JobInsertResult{rows[0], {Job: &other}, rows[2], rows[3], rows[4]})
	require.False(t, ok, "a row of another tenant")
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return raw
}

// jsonbText re-spaces compact JSON as jsonb prints it ("k": v, …), with
// keys in jsonb's order (shorter first).
func jsonbText(t *testing.T, raw []byte) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if len(keys[j]) < len(keys[i]) || (len(keys[j]) == len(keys[i]) && keys[j] < keys[i]) {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	out := []byte("{")
	for i, k := range keys {
		if i > 0 {
			out = append(out, ", "...)
		}
		kq, _ := json.Marshal(k)
		out = append(out, kq...)
		out = append(out, ": "...)
		out = append(out, mustJSONNoEscape(t, m[k])...)
	}
	return append(out, '}')
}

// mustJSONNoEscape encodes v without Go's HTML escaping, as jsonb prints.
func mustJSONNoEscape(t *testing.T, v any) []byte {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		return mustJSON(t, v)
	}
	out := []byte{'"'}
	for _, r := range s {
		switch r {
		case '"', '\\':
			out = append(out, '\\', byte(r))
		default:
			out = append(out, string(r)...)
		}
	}
	return append(out, '"')
}

// TestJSONTypeOfSelfDecoding: SQL's shape of an args field names the JSON
// the strict decoder takes: a string for a type that decodes itself from
// text (netip.Addr, a struct), anything for one with its own UnmarshalJSON.
func TestJSONTypeOfSelfDecoding(t *testing.T) {
	t.Parallel()

	require.Equal(t, "string", jsonType(reflect.TypeFor[netip.Addr]()))
	require.Equal(t, "string", jsonType(reflect.TypeFor[*netip.Addr]()))
	require.Equal(t, "any", jsonType(reflect.TypeFor[time.Time]()))
	require.Equal(t, "object", jsonType(reflect.TypeFor[struct{ A int }]()))
}
