package task

import (
	"bytes"
	"cmp"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/riverqueue/river"

	"github.com/handoff/handoff/internal/auth"
	"github.com/handoff/handoff/internal/jsonstrict"
	"github.com/handoff/handoff/internal/riverseam"
	"github.com/handoff/handoff/jobs"
)

// Limits on a create request. handoff.check_request (migration 00012)
// checks the same numbers in SQL; TestRulesAgree proves the two agree.
const (
	MaxAttemptsLimit      = 1000
	IdempotencyKeyMaxLen  = 255
	CallbackURLMaxLen     = 2048
	MaxArgsBytes          = 1 << 20
	DefaultQueue          = river.QueueDefault
	DefaultTenant         = "default"
	DefaultMaxAttempts    = river.MaxAttemptsDefault
	ListLimitDefault      = 50
	ListLimitMax          = 100
	runAtFutureLimitYears = 10
)

// callbackURLPattern is an absolute http or https URL that the http kind
// can send to: a host name of letters, digits, non-ASCII characters and RFC
// 3986's unreserved and sub-delimiter characters (no credentials, no
// percent-escapes, no IPv6 address in brackets, whose forms the two
// engines could not check alike); a port from 1 to 65535 if any; then no
// ASCII space or control character, and only well-formed percent-escapes. Every URL it matches passes the http kind's own check
// (jobs.CheckHTTPURL, TestCallbackURLPatternSendable); the SQL check of
// migration 00023 uses the same expression.
var callbackURLPattern = regexp.MustCompile(CallbackURLPattern)

// CallbackURLPattern is callbackURLPattern's expression, in a syntax Go's
// regexp and Postgres's regular expressions read alike: explicit ranges,
// no character class whose members depend on the locale ([:space:] is
// ASCII in Go and Unicode in Postgres).
const CallbackURLPattern = `^[hH][tT][tT][pP][sS]?://` +
	`([A-Za-z0-9._~!$&'()*+,;=-]|[^\x00-\x7F])+` +
	`(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})?)?` +
	`([/?#]([^%\x00-\x20\x7F]|%[0-9A-Fa-f]{2})*)?$`

// CreateRequest is a request to run a task.
type CreateRequest struct {
	Kind           string          `json:"kind"`
	Args           json.RawMessage `json:"args"`
	Queue          string          `json:"queue,omitempty"`
	Priority       int             `json:"priority,omitempty"`
	MaxAttempts    int             `json:"max_attempts,omitempty"`
	RunAt          *time.Time      `json:"run_at,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	CallbackURL    string          `json:"callback_url,omitempty"`
	// Tenant scopes idempotency keys; empty means DefaultTenant. The HTTP
	// API never takes it from a body: API keys will decide it.
	Tenant string `json:"-"`
	// Given names the fields a decoded JSON body had (jsonstrict fills
	// it). A field given with its zero value ("queue": "", "priority": 0)
	// is then refused, as SQL refuses it, instead of meaning "not given";
	// null and leaving it out still mean that. Go callers leave it nil.
	Given jsonstrict.Given `json:"-"`
}

// Validator checks create requests. It is the one Go implementation of the
// rules, behind the HTTP API (Service.Create) and the Go package enqueue;
// handoff.enqueue re-checks them in SQL.
type Validator struct {
	kinds   map[string]jobs.Kind
	queues  map[string]bool
	nowFunc func() time.Time
	// maxArgs is the largest args accepted, at most MaxArgsBytes.
	maxArgs int
}

// NewValidator returns a Validator that accepts the given kinds and queues.
// With no queues, any queue name passes here and handoff.enqueue checks it
// against the queues the server recorded. A nil nowFunc means time.Now.
func NewValidator(kinds []jobs.Kind, queues []string, nowFunc func() time.Time) *Validator {
	v := &Validator{
		kinds:   make(map[string]jobs.Kind, len(kinds)),
		nowFunc: nowFunc,
		maxArgs: MaxArgsBytes,
	}
	if v.nowFunc == nil {
		v.nowFunc = time.Now
	}
	for _, k := range kinds {
		v.kinds[k.Name] = k
	}
	if len(queues) > 0 {
		v.queues = make(map[string]bool, len(queues))
		for _, q := range queues {
			v.queues[q] = true
		}
	}
	return v
}

// Prepared is a validated CreateRequest with its defaults applied, ready to
// insert through River's InsertTx or handoff.enqueue.
type Prepared struct {
	// Kind and Args are the parsed request; EncodedArgs are the args as
	// River stores them.
	Kind        string
	Args        river.JobArgs
	EncodedArgs json.RawMessage

	Queue       string
	Priority    int
	MaxAttempts int
	// RunAt is run_at as sent, to the microsecond Postgres keeps; nil when
	// not sent. ScheduledAt is when the task runs: zero means now.
	RunAt       *time.Time
	ScheduledAt time.Time

	IdempotencyKey *string
	CallbackURL    *string
	Tenant         string
}

// Prepare validates req completely before anything touches the database, so
// a rejected request writes nothing. Errors: *ValidationError.
func (v *Validator) Prepare(req CreateRequest) (*Prepared, error) {
	problems := map[string]string{}
	var args river.JobArgs
	switch kind, ok := v.kinds[req.Kind]; {
	case req.Kind == "":
		problems["kind"] = "is required; known kinds: " + v.kindNames()
	case !ok:
		problems["kind"] = fmt.Sprintf("unknown kind %q; known kinds: %s", jsonstrict.Shorten(req.Kind), v.kindNames())
	case len(req.Args) > v.maxArgs:
		problems["args"] = fmt.Sprintf("must be at most %d bytes of JSON", v.maxArgs)
	default:
		var err error
		if args, err = kind.Parse(req.Args); err != nil {
			var argsErr jobs.ArgsError
			if !errors.As(err, &argsErr) {
				// A kind's Validate may return any error; it still describes
				// the client's args.
				argsErr = jobs.ArgsError{"": err.Error()}
			}
			for field, msg := range argsErr {
				problems[strings.TrimSuffix("args."+field, ".")] = msg
			}
		} else if containsNULEscape(req.Args) {
			problems["args"] = `must not contain the character U+0000 ("\u0000"), which Postgres cannot store in JSON; encode binary data, as base64 say`
		}
	}

	// A field given empty is a mistake the client should hear of (SQL
	// refuses the same values): leave a field out, or null, for its
	// default.
	given := func(name string, empty bool) bool { return empty && req.Given.Has(name) }
	if given("queue", req.Queue == "") {
		problems["queue"] = "must not be empty; leave it out for the default queue"
	}
	if given("priority", req.Priority == 0) {
		problems["priority"] = "must be between 1 (highest) and 4; leave it out for 1"
	}
	if given("max_attempts", req.MaxAttempts == 0) {
		problems["max_attempts"] = fmt.Sprintf("must be between 1 and %d; leave it out for %d", MaxAttemptsLimit, DefaultMaxAttempts)
	}
	if given("idempotency_key", req.IdempotencyKey == "") {
		problems["idempotency_key"] = "must not be empty; leave it out for no key"
	}
	if given("callback_url", req.CallbackURL == "") {
		problems["callback_url"] = "must not be empty; leave it out for no callback"
	}

	queue := cmp.Or(req.Queue, DefaultQueue)
	if req.Queue != "" && v.queues != nil && !v.queues[queue] {
		problems["queue"] = fmt.Sprintf("unknown queue %q; served queues: %s", jsonstrict.Shorten(queue), strings.Join(slices.Sorted(maps.Keys(v.queues)), ", "))
	}
	priority := cmp.Or(req.Priority, 1)
	if priority < 1 || priority > 4 {
		problems["priority"] = "must be between 1 (highest) and 4"
	}
	if req.MaxAttempts < 0 || req.MaxAttempts > MaxAttemptsLimit {
		problems["max_attempts"] = fmt.Sprintf("must be between 1 and %d", MaxAttemptsLimit)
	}
	var runAt *time.Time
	var scheduledAt time.Time
	if req.RunAt != nil {
		// Postgres keeps microseconds; the request hash is computed there.
		sent := req.RunAt.UTC().Truncate(time.Microsecond)
		runAt = &sent
		now := v.nowFunc()
		switch {
		case sent.Year() < 1:
			// Postgres has no year 0: such a time could not be stored.
			problems["run_at"] = "must be in year 1 or later"
		case sent.After(now.AddDate(runAtFutureLimitYears, 0, 0)):
			problems["run_at"] = fmt.Sprintf("must be within %d years from now", runAtFutureLimitYears)
		case sent.After(now):
			scheduledAt = sent
		default:
			// A time already past means now. River would store it as
			// scheduled and leave it to its scheduler, up to 5 s later.
		}
	}
	var key *string
	if req.IdempotencyKey != "" {
		switch {
		case len(req.IdempotencyKey) > IdempotencyKeyMaxLen:
			problems["idempotency_key"] = fmt.Sprintf("must be at most %d bytes", IdempotencyKeyMaxLen)
		case !ValidText(req.IdempotencyKey):
			problems["idempotency_key"] = "must be valid UTF-8 without NUL characters"
		case blank(req.IdempotencyKey):
			problems["idempotency_key"] = "must not be only whitespace"
		}
		key = &req.IdempotencyKey
	}
	var callbackURL *string
	if req.CallbackURL != "" {
		switch {
		case len(req.CallbackURL) > CallbackURLMaxLen || !ValidText(req.CallbackURL) || !callbackURLPattern.MatchString(req.CallbackURL) ||
			jobs.CheckHTTPURL(req.CallbackURL) != "":
			problems["callback_url"] = fmt.Sprintf("must be an absolute http or https URL without credentials, at most %d bytes", CallbackURLMaxLen)
		default:
			callbackURL = &req.CallbackURL
		}
	}
	tenant := cmp.Or(req.Tenant, DefaultTenant)
	if !auth.ValidTenant(tenant) {
		// The rule of `handoff keys create --tenant` (and of SQL since
		// 00019): a task under any other name could never be read by a key.
		problems["tenant"] = "must be 1 to 63 lower-case letters, digits, '-' or '_', starting with a letter or digit"
	}
	if len(problems) > 0 {
		return nil, &ValidationError{Fields: problems}
	}

	encoded, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("encode args: %w", err)
	}
	return &Prepared{
		Kind:           req.Kind,
		Args:           args,
		EncodedArgs:    encoded,
		Queue:          queue,
		Priority:       priority,
		MaxAttempts:    cmp.Or(req.MaxAttempts, DefaultMaxAttempts),
		RunAt:          runAt,
		ScheduledAt:    scheduledAt,
		IdempotencyKey: key,
		CallbackURL:    callbackURL,
		Tenant:         tenant,
	}, nil
}

// insertOpts are River's options for p. Its metadata carries what the
// insert trigger copies to the tasks row (migrations 00010 and 00012):
// tenant, idempotency key, run_at as sent and callback URL; the request
// hash is computed by the database from these and the job's columns.
func (p *Prepared) insertOpts() *river.InsertOpts {
	return &river.InsertOpts{
		Queue:       p.Queue,
		Priority:    p.Priority,
		MaxAttempts: p.MaxAttempts,
		ScheduledAt: p.ScheduledAt,
		Metadata:    p.metadata(),
	}
}

// metadata is the job metadata that carries p's Handoff fields, the bytes
// json.Marshal writes for them as a map[string]string (members sorted by
// key), appended by hand: a batch of 1,000 spent 5% of the server's CPU on
// the map and its encoding. TestPreparedMetadata compares the two.
func (p *Prepared) metadata() []byte {
	b := make([]byte, 0, 32+len(p.Tenant))
	b = append(b, '{')
	member := func(k, v string) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, v)
	}
	if p.CallbackURL != nil {
		member(riverseam.MetadataKeyCallbackURL, *p.CallbackURL)
	}
	if p.IdempotencyKey != nil {
		member(riverseam.MetadataKeyIdempotencyKey, *p.IdempotencyKey)
	}
	if p.RunAt != nil {
		member(riverseam.MetadataKeyRunAt, p.RunAt.Format(time.RFC3339Nano))
	}
	member(riverseam.MetadataKeyTenant, p.Tenant)
	return append(b, '}')
}

func (v *Validator) kindNames() string {
	return strings.Join(slices.Sorted(maps.Keys(v.kinds)), ", ")
}

// ValidText reports whether s can be stored in a Postgres text column:
// valid UTF-8 and no NUL, which Postgres refuses.
func ValidText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// containsNULEscape reports whether the JSON text raw holds a \u0000 escape
// (a backslash-escaped backslash before "u0000" is not one): jsonb cannot
// store U+0000 (SQLSTATE 22P05), which would otherwise refuse the request
// without naming the field.
func containsNULEscape(raw []byte) bool {
	for i := 0; ; {
		j := bytes.Index(raw[i:], []byte("u0000"))
		if j < 0 {
			return false
		}
		u := i + j
		slashes := 0
		for b := u - 1; b >= 0 && raw[b] == '\\'; b-- {
			slashes++
		}
		if slashes%2 == 1 {
			return true
		}
		i = u + 1
	}
}

// blank reports whether s has nothing but ASCII whitespace, as the SQL check
// ('^[ \t\r\n\v\f]*$') does.
func blank(s string) bool {
	return strings.Trim(s, " \t\r\n\v\f") == ""
}

// ArgsShape is what SQL can check of a kind's args (handoff.kinds.shape):
// each JSON field with its type and bounds. Fields not listed are unknown.
type ArgsShape struct {
	Fields map[string]FieldShape `json:"fields"`
}

// FieldShape is one args field: its JSON type ("number", "integer",
// "string", "boolean", "object", "array" or "any"), from its Go type, and
// what its `handoff` struct tag says: "required" (present and not null),
// "min=N" and "max=N" (bounds of a number). The tag restates for SQL what
// the kind's Validate checks in Go; TestRulesAgree holds them together.
type FieldShape struct {
	Type     string   `json:"type"`
	Required bool     `json:"required,omitempty"`
	Min      *float64 `json:"min,omitempty"`
	Max      *float64 `json:"max,omitempty"`
}

// ShapeOf derives the shape of an args type from its Go fields, their json
// tags (as encoding/json decodes them) and their handoff tags.
func ShapeOf(t reflect.Type) (ArgsShape, error) {
	shape := ArgsShape{Fields: map[string]FieldShape{}}
	return shape, addFields(shape.Fields, t)
}

func addFields(fields map[string]FieldShape, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		switch {
		case name == "-" && tag == "-":
			continue
		case f.Anonymous && name == "":
			if err := addFields(fields, f.Type); err != nil {
				return err
			}
			continue
		case !f.IsExported():
			continue
		case name == "":
			name = f.Name
		}
		field := FieldShape{Type: jsonType(f.Type)}
		for rule := range strings.SplitSeq(f.Tag.Get("handoff"), ",") {
			key, value, _ := strings.Cut(strings.TrimSpace(rule), "=")
			switch key {
			case "":
			case "required":
				field.Required = true
			case "min", "max":
				n, err := strconv.ParseFloat(value, 64)
				if err != nil {
					return fmt.Errorf("field %s: handoff tag %q: %w", f.Name, rule, err)
				}
				if key == "min" {
					field.Min = &n
				} else {
					field.Max = &n
				}
			default:
				return fmt.Errorf("field %s: unknown handoff tag rule %q", f.Name, rule)
			}
		}
		fields[name] = field
	}
	return nil
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessageType || t.Implements(reflect.TypeFor[json.Unmarshaler]()) || reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		return "any"
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		// The strict decoder takes such a type (netip.Addr) from a string
		// only, whatever its kind.
		return "string"
	}
	switch t.Kind() { //nolint:exhaustive // every other kind decodes from any JSON, or not at all: "any"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	default:
		return "any"
	}
}
