package jsonstrict_test

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/jsonstrict"
)

type inner struct {
	Seconds float64 `json:"seconds"`
	Times   int     `json:"fail_times,omitempty"`
}

type request struct {
	Kind     string            `json:"kind"`
	Args     json.RawMessage   `json:"args"`
	Priority int               `json:"priority,omitempty"`
	Small    int16             `json:"small,omitempty"`
	Count    uint8             `json:"count,omitempty"`
	RunAt    *time.Time        `json:"run_at,omitempty"`
	Inner    inner             `json:"inner"`
	Headers  map[string]string `json:"headers,omitempty"`
	List     []inner           `json:"list,omitempty"`
	Flag     bool              `json:"flag,omitempty"`
	Ignored  string            `json:"-"`
}

func TestDecodeValid(t *testing.T) {
	t.Parallel()

	var req request
	err := jsonstrict.Decode([]byte(`{"kind":"sleep","args":{"seconds":1},"priority":2.0,"small":-32768,"count":255,
		"run_at":"2026-01-02T15:04:05+01:00","inner":{"seconds":0.5},"headers":{"A":"b"},"list":[{"seconds":1e2}],"flag":true}`), &req)
	require.NoError(t, err)
	require.Equal(t, "sleep", req.Kind)
	require.JSONEq(t, `{"seconds":1}`, string(req.Args))
	require.Equal(t, 2, req.Priority)
	require.Equal(t, int16(-32768), req.Small)
	require.Equal(t, uint8(255), req.Count)
	require.True(t, req.RunAt.Equal(time.Date(2026, 1, 2, 14, 4, 5, 0, time.UTC)))
	require.InDelta(t, 0.5, req.Inner.Seconds, 0)
	require.Equal(t, map[string]string{"A": "b"}, req.Headers)
	require.Len(t, req.List, 1)
	require.InDelta(t, 100.0, req.List[0].Seconds, 0)
	require.True(t, req.Flag)

	// null means "not given", a nested object's too (SQL's args check
	// skips a null too); only the value itself and its arrays' items must
	// be objects.
	var withNull request
	require.NoError(t, jsonstrict.Decode([]byte(`{"kind":null,"run_at":null,"args":null,"inner":null,"headers":null}`), &withNull))
	require.Empty(t, withNull.Kind)
	require.Nil(t, withNull.RunAt)
	require.Equal(t, "null", string(withNull.Args))
}

func TestDecodeSyntax(t *testing.T) {
	t.Parallel()

	for name, body := range map[string]string{
		"empty":           ``,
		"blank":           "  \n",
		"truncated":       `{"kind":`,
		"trailing data":   `{"kind":"noop"} {}`,
		"trailing text":   `{"kind":"noop"}x`,
		"duplicate":       `{"kind":"sleep","kind":"noop"}`,
		"duplicate inner": `{"args":{"seconds":1,"seconds":2}}`,
		"single quotes":   `{'kind':'noop'}`,
		"trailing comma":  `{"kind":"noop",}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var req request
			err := jsonstrict.Decode([]byte(body), &req)
			var syntaxErr *jsonstrict.SyntaxError
			require.ErrorAs(t, err, &syntaxErr, "got %v", err)
			require.NotEmpty(t, syntaxErr.Detail)
		})
	}

	var req request
	err := jsonstrict.Decode([]byte(`{"kind":"sleep","kind":"noop"}`), &req)
	require.ErrorContains(t, err, `field "kind" is given twice`)
}

func TestDecodeFieldsError(t *testing.T) {
	t.Parallel()

	for name, tt := range map[string]struct {
		body string
		want jsonstrict.FieldsError
	}{
		"case variant": {
			`{"KIND":"noop","Priority":1}`,
			jsonstrict.FieldsError{
				"KIND":     `unknown field (names are case-sensitive: did you mean "kind"?)`,
				"Priority": `unknown field (names are case-sensitive: did you mean "priority"?)`,
			},
		},
		"case variant nested": {
			`{"inner":{"SECONDS":1}}`,
			jsonstrict.FieldsError{"inner.SECONDS": `unknown field (names are case-sensitive: did you mean "seconds"?)`},
		},
		"unknown":                {`{"nope":1}`, jsonstrict.FieldsError{"nope": "unknown field"}},
		"ignored tag is unknown": {`{"Ignored":"x"}`, jsonstrict.FieldsError{"Ignored": "unknown field"}},
		"every type error at once": {
			`{"kind":1,"priority":"2","flag":"yes","inner":{"seconds":"1","fail_times":true},"list":[{"seconds":[]}],"headers":{"a":1}}`,
			jsonstrict.FieldsError{
				"kind":             "must be a string, not a number",
				"priority":         "must be an integer, not a string",
				"flag":             "must be true or false, not a string",
				"inner.seconds":    "must be a number, not a string",
				"inner.fail_times": "must be an integer, not a boolean",
				"list[0].seconds":  "must be a number, not an array",
				"headers.a":        "must be a string, not a number",
			},
		},
		"not an integer":   {`{"priority":1.5}`, jsonstrict.FieldsError{"priority": "must be an integer, not 1.5"}},
		"int out of range": {`{"small":32768}`, jsonstrict.FieldsError{"small": "32768 is out of range: must be an integer from -32768 to 32767"}},
		"uint negative":    {`{"count":-1}`, jsonstrict.FieldsError{"count": "-1 is out of range: must be an integer from 0 to 255"}},
		"huge int":         {`{"priority":1e30}`, jsonstrict.FieldsError{"priority": "1e30 is out of range for an integer"}},
		"float overflow":   {`{"inner":{"seconds":1e999}}`, jsonstrict.FieldsError{"inner.seconds": "1e999 is out of range for a number"}},
		"not an object":    {`{"inner":[]}`, jsonstrict.FieldsError{"inner": "must be an object, not an array"}},
		"root not object":  {`[1]`, jsonstrict.FieldsError{"": "must be an object, not an array"}},
		"root null":        {`null`, jsonstrict.FieldsError{"": "must be an object, not null"}},
		"item null":        {`{"list":[{"seconds":1},null]}`, jsonstrict.FieldsError{"list[1]": "must be an object, not null"}},
		// A float64 rounds these to integers; they are not.
		"not an integer, rounded": {`{"priority":1.0000000000000001}`, jsonstrict.FieldsError{"priority": "must be an integer, not 1.0000000000000001"}},
		"not an integer, tiny":    {`{"priority":1e-99999999999999999999}`, jsonstrict.FieldsError{"priority": "must be an integer, not 1e-99999999999999999999"}},
		"huge exponent":           {`{"priority":1e99999999999999999999}`, jsonstrict.FieldsError{"priority": "1e99999999999999999999 is out of range for an integer"}},
		"uint over":               {`{"count":256.0}`, jsonstrict.FieldsError{"count": "256.0 is out of range: must be an integer from 0 to 255"}},
		"lone high surrogate": {
			`{"kind":"\ud800"}`,
			jsonstrict.FieldsError{"kind": `must be valid UTF-8 text: invalid UTF-8 or an unpaired surrogate escape (\ud800-\udfff) is not allowed`},
		},
		"lone low surrogate in args": {
			`{"args":{"seconds":"\udfff"}}`,
			jsonstrict.FieldsError{"args": `must hold only valid UTF-8 text: invalid UTF-8 or an unpaired surrogate escape (\ud800-\udfff) is not allowed`},
		},
		"raw invalid UTF-8": {
			"{\"kind\":\"a\xfeb\"}",
			jsonstrict.FieldsError{"kind": `must be valid UTF-8 text: invalid UTF-8 or an unpaired surrogate escape (\ud800-\udfff) is not allowed`},
		},
		"time not a string": {`{"run_at":1}`, jsonstrict.FieldsError{"run_at": "must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z, not a number"}},
		"time offset 24": {
			`{"run_at":"2026-01-02T15:04:05+24:00"}`,
			jsonstrict.FieldsError{"run_at": "must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z: offset +24:00 is out of range (at most ±23:59)"},
		},
		"time without zone": {
			`{"run_at":"2026-01-02T15:04:05"}`,
			jsonstrict.FieldsError{"run_at": `must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z: "2026-01-02T15:04:05" is not a valid time`},
		},
		"leap second not at day's end": {
			`{"run_at":"2026-01-02T15:04:60Z"}`,
			jsonstrict.FieldsError{"run_at": `must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z: "2026-01-02T15:04:60Z" is not a valid time: a leap second is 23:59:60 UTC`},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var req request
			err := jsonstrict.Decode([]byte(tt.body), &req)
			var fieldErrs jsonstrict.FieldsError
			require.ErrorAs(t, err, &fieldErrs, "got %v", err)
			require.Equal(t, tt.want, fieldErrs)
		})
	}
}

func TestDecodeKeepsGoodFields(t *testing.T) {
	t.Parallel()

	var req request
	err := jsonstrict.Decode([]byte(`{"kind":"sleep","priority":"x","flag":true}`), &req)
	require.Error(t, err)
	require.Equal(t, "sleep", req.Kind, "fields without an error are set")
	require.True(t, req.Flag)
	require.Zero(t, req.Priority)
}

func TestDecodeEchoIsShort(t *testing.T) {
	t.Parallel()

	var req request
	err := jsonstrict.Decode([]byte(`{"priority":`+strings.Repeat("1", 100000)+`.5}`), &req)
	require.Error(t, err)
	require.Less(t, len(err.Error()), 200)

	// An unknown field's name is the error's key: cut too.
	long := strings.Repeat("x", 5000)
	err = jsonstrict.Decode([]byte(`{"inner":{"`+long+`":1}}`), &req)
	var fieldErrs jsonstrict.FieldsError
	require.ErrorAs(t, err, &fieldErrs)
	require.Equal(t, jsonstrict.FieldsError{"inner." + strings.Repeat("x", 64) + "…": "unknown field"}, fieldErrs)

	err = jsonstrict.Decode([]byte(`{"`+long+`":1,"`+long+`":2}`), &req)
	var syntaxErr *jsonstrict.SyntaxError
	require.ErrorAs(t, err, &syntaxErr)
	require.Less(t, len(syntaxErr.Detail), 200)
}

// A struct that decodes itself (a string, for netip.Addr) is no object
// that null could fail to be; a map's keys are cut when echoed.
func TestDecodeNullAndKeys(t *testing.T) {
	t.Parallel()

	var withAddr struct {
		Addr netip.Addr `json:"addr"`
	}
	require.NoError(t, jsonstrict.Decode([]byte(`{"addr":null}`), &withAddr))
	require.NoError(t, jsonstrict.Decode([]byte(`{"addr":"127.0.0.1"}`), &withAddr))
	require.Equal(t, netip.MustParseAddr("127.0.0.1"), withAddr.Addr)

	var req request
	err := jsonstrict.Decode([]byte(`{"headers":{"`+strings.Repeat("h", 5000)+`":1}}`), &req)
	var fieldErrs jsonstrict.FieldsError
	require.ErrorAs(t, err, &fieldErrs)
	require.Equal(t, jsonstrict.FieldsError{"headers." + strings.Repeat("h", 64) + "…": "must be a string, not a number"}, fieldErrs)
}

// Integers in any notation, read exactly: the value a literal denotes,
// never a float's rounding of it.
func TestDecodeIntegers(t *testing.T) {
	t.Parallel()

	type ints struct {
		I   int64  `json:"i"`
		U   uint64 `json:"u"`
		I16 int16  `json:"i16"`
	}
	for body, want := range map[string]ints{
		`{"i":2.0,"u":1e2,"i16":-0.0}`:                             {I: 2, U: 100},
		`{"i":-9223372036854775808,"u":18446744073709551615}`:      {I: -9223372036854775808, U: 18446744073709551615},
		`{"i":922337203685477580.7e1,"u":1844674407370955161.5E1}`: {I: 9223372036854775807, U: 18446744073709551615},
		`{"i":0e99999999999999999999,"u":0.000e-5}`:                {},
		`{"i":12300e-2,"i16":32767.000}`:                           {I: 123, I16: 32767},
	} {
		var got ints
		require.NoError(t, jsonstrict.Decode([]byte(body), &got), body)
		require.Equal(t, want, got, body)
	}
	for body, field := range map[string]string{
		`{"i":9223372036854775808}`:     "i",
		`{"i":9.223372036854775808e18}`: "i",
		`{"u":-1e0}`:                    "u",
		`{"u":18446744073709551616}`:    "u",
		`{"i16":-32769}`:                "i16",
		`{"i":123456789012345678901}`:   "i",
		`{"i":1.5e0}`:                   "i",
		`{"i":10e-2}`:                   "i",
	} {
		var got ints
		err := jsonstrict.Decode([]byte(body), &got)
		var fieldErrs jsonstrict.FieldsError
		require.ErrorAs(t, err, &fieldErrs, body)
		require.Contains(t, fieldErrs, field, body)
	}
}

// Given names the fields an object had, so that "queue": "" can be told
// from no queue; a null is not given.
func TestDecodeGiven(t *testing.T) {
	t.Parallel()

	type withGiven struct {
		Kind  string           `json:"kind"`
		Queue string           `json:"queue,omitempty"`
		Pri   int              `json:"priority,omitempty"`
		Given jsonstrict.Given `json:"-"`
	}
	var got withGiven
	require.NoError(t, jsonstrict.Decode([]byte(`{"kind":"noop","queue":"","priority":null}`), &got))
	require.Equal(t, jsonstrict.Given{"kind", "queue"}, got.Given)
	require.True(t, got.Given.Has("queue"))
	require.False(t, got.Given.Has("priority"))

	var items []withGiven
	require.NoError(t, jsonstrict.Decode([]byte(`[{"kind":"a"},{"priority":2}]`), &items))
	require.Equal(t, jsonstrict.Given{"kind"}, items[0].Given)
	require.Equal(t, jsonstrict.Given{"priority"}, items[1].Given)

	// "Given" is no JSON field.
	var unknown withGiven
	err := jsonstrict.Decode([]byte(`{"Given":["kind"]}`), &unknown)
	var fieldErrs jsonstrict.FieldsError
	require.ErrorAs(t, err, &fieldErrs)
	require.Equal(t, jsonstrict.FieldsError{"Given": "unknown field"}, fieldErrs)
}

func TestParseTime(t *testing.T) {
	t.Parallel()

	leap, err := jsonstrict.ParseTime("2016-12-31T23:59:60Z")
	require.NoError(t, err)
	require.True(t, leap.Equal(time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC)), "got %s", leap)

	leapOffset, err := jsonstrict.ParseTime("2017-01-01T00:59:60+01:00")
	require.NoError(t, err)
	require.True(t, leapOffset.Equal(leap))

	frac, err := jsonstrict.ParseTime("2026-01-02T15:04:05.123456789-23:59")
	require.NoError(t, err)
	require.Equal(t, 123456789, frac.Nanosecond())

	for _, bad := range []string{"", "2026-01-02", "2026-13-02T15:04:05Z", "2026-01-02T15:04:05+23:60", "2026-01-02 15:04:05Z"} {
		_, err := jsonstrict.ParseTime(bad)
		require.Error(t, err, bad)
	}
}

func TestDecodeInvalidTextWithOtherErrors(t *testing.T) {
	t.Parallel()

	var req request
	err := jsonstrict.Decode([]byte("{\"kind\":\"\\ud800\",\"priority\":\"x\",\"headers\":{\"a\\udc00\":\"v\",\"b\":\"\\ud83d\\ude00\"},\"inner\":{\"seconds\":1}}"), &req)
	var fieldErrs jsonstrict.FieldsError
	require.ErrorAs(t, err, &fieldErrs)
	require.Equal(t, jsonstrict.FieldsError{
		"kind":     `must be valid UTF-8 text: invalid UTF-8 or an unpaired surrogate escape (\ud800-\udfff) is not allowed`,
		"priority": "must be an integer, not a string",
		"headers":  "has a field name that is not valid UTF-8 text",
	}, fieldErrs)
	require.Equal(t, "😀", req.Headers["b"], "a surrogate pair is one character")
	require.InDelta(t, 1.0, req.Inner.Seconds, 0)

	for _, ok := range []string{`"plain"`, `"\\u00e9\\\\u"`, `"\ud83d\ude00"`, `"\\"`} {
		var s string
		require.NoError(t, jsonstrict.Decode([]byte(ok), &s), ok)
	}
	for _, bad := range []string{`"\ud83d"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\ude00\ud83d"`, "\"\xc3\""} {
		var s string
		require.Error(t, jsonstrict.Decode([]byte(bad), &s), bad)
	}
}
