// Package jsonstrict decodes JSON the way Handoff's API promises to: one
// decoder for request bodies and task args, so that a mistake reads the same
// wherever it is made.
//
// Strict means:
//   - exactly one JSON value, nothing after it;
//   - object member names match a field's JSON name exactly: a case variant
//     ("KIND", "Max_Attempts") is an unknown field, and unknown fields are
//     errors;
//   - a name given twice is malformed JSON, not "the last one wins";
//   - strings are valid UTF-8 with no unpaired surrogate escape ("\ud800"),
//     never silently turned into U+FFFD;
//   - numbers fit their field: an integer field takes an integral value
//     (1 or 1.0, not 1.5, nor 1.0000000000000001), read exactly from the
//     literal, within its type's range; 1e999 is out of range;
//   - times are RFC 3339, leap seconds included, offsets within ±23:59;
//   - null means "not given" for a field, but the value decoded itself, or
//     an item of an array field of it, must be the object asked for;
//   - every name or value echoed in an error is cut at 64 bytes.
//
// A struct may have a field of type Given, which Decode fills with the
// names of the fields the object had, so that "queue": "" can be told from
// a queue left out.
//
// Syntax problems stop decoding and come back as a *SyntaxError (the API's
// 400). Everything else is collected over the whole value and comes back at
// once as FieldsError keyed by each field's full path (the API's 422).
//
// The syntax check is jsontext's, from github.com/go-json-experiment/json
// (the implementation behind Go's encoding/json/v2 experiment); this package
// adds the walk against the Go type that reports every field at once.
package jsonstrict

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// SyntaxError means the input is not one well-formed JSON value: a request
// to fix at the byte level.
type SyntaxError struct {
	// Offset is the byte offset where the problem was found.
	Offset int64
	// Detail says what is wrong, for a person.
	Detail string
}

func (e *SyntaxError) Error() string { return e.Detail }

// FieldsError maps a field's path to what is wrong with it. Paths join JSON
// names with dots and index arrays with brackets ("args.seconds",
// "items[2].url"); the empty path is the value as a whole.
type FieldsError map[string]string

// Error lists the problems in a stable order.
func (e FieldsError) Error() string {
	parts := make([]string, 0, len(e))
	for _, path := range slices.Sorted(maps.Keys(e)) {
		if path == "" {
			parts = append(parts, e[path])
			continue
		}
		parts = append(parts, path+": "+e[path])
	}
	return strings.Join(parts, "; ")
}

// Decode decodes data, which must hold exactly one JSON value, into dst, a
// non-nil pointer. Fields without an error are set even when others have
// one, so that a caller can validate what did decode and report everything
// at once.
//
// It returns a *SyntaxError, FieldsError, or nil.
func Decode(data []byte, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		panic("jsonstrict: Decode needs a non-nil pointer")
	}
	if err := checkSyntax(data); err != nil {
		return err
	}
	// Invalid UTF-8 and unpaired surrogates pass the syntax check and the
	// walk's tokenizer (which would turn them into U+FFFD), so that the
	// walk can report them per field, with every other problem.
	d := &decoder{dec: jsontext.NewDecoder(bytes.NewReader(data), jsontext.AllowInvalidUTF8(true)), errs: FieldsError{}}
	if err := d.value("", rv.Elem()); err != nil {
		// The syntax was checked: this is a bug in the walk, not the input.
		return fmt.Errorf("jsonstrict: walk checked input: %w", err)
	}
	if len(d.errs) > 0 {
		return d.errs
	}
	return nil
}

// checkSyntax reads data as one JSON value with jsontext's defaults, which
// refuse duplicate names, invalid UTF-8 and unpaired surrogates.
func checkSyntax(data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return &SyntaxError{Detail: "the body is empty; send a JSON object"}
	}
	dec := jsontext.NewDecoder(bytes.NewReader(data), jsontext.AllowInvalidUTF8(true))
	if _, err := dec.ReadValue(); err != nil {
		return syntaxError(err)
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return &SyntaxError{Offset: dec.InputOffset(), Detail: fmt.Sprintf("malformed JSON: data after the value at byte %d; send exactly one JSON value", dec.InputOffset())}
	}
	return nil
}

func syntaxError(err error) error {
	var serr *jsontext.SyntacticError
	if !errors.As(err, &serr) {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return &SyntaxError{Detail: "malformed JSON: the body ends before the value does"}
		}
		return &SyntaxError{Detail: "malformed JSON: " + err.Error()}
	}
	path := pointerPath(serr.JSONPointer)
	msg := serr.Err.Error()
	switch {
	case errors.Is(serr.Err, jsontext.ErrDuplicateName):
		return &SyntaxError{Offset: serr.ByteOffset, Detail: fmt.Sprintf("malformed JSON: field %s is given twice at byte %d; give each field once", Quote(path), serr.ByteOffset)}
	case errors.Is(serr.Err, io.ErrUnexpectedEOF):
		return &SyntaxError{Offset: serr.ByteOffset, Detail: "malformed JSON: the body ends before the value does"}
	}
	return &SyntaxError{Offset: serr.ByteOffset, Detail: fmt.Sprintf("malformed JSON at byte %d: %s", serr.ByteOffset, msg)}
}

// pointerPath turns a JSON pointer ("/args/seconds") into a field path
// ("args.seconds").
func pointerPath(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if n, err := strconv.Atoi(tok); err == nil && b.Len() > 0 {
			fmt.Fprintf(&b, "[%d]", n)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

type decoder struct {
	dec  *jsontext.Decoder
	errs FieldsError
}

var (
	rawMessageType      = reflect.TypeFor[json.RawMessage]()
	timeType            = reflect.TypeFor[time.Time]()
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// isPlainObject reports whether t is decoded from a JSON object field by
// field: a struct with no JSON or text decoding of its own.
func isPlainObject(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t != timeType &&
		!reflect.PointerTo(t).Implements(unmarshalerType) && !reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// isBodyOrItem reports whether path is the value decoded itself ("") or an
// item of one of its array fields ("tasks[3]").
func isBodyOrItem(path string) bool {
	return path == "" || (strings.HasSuffix(path, "]") && !strings.Contains(path, ".") && strings.Count(path, "[") == 1)
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// fail records a field error and skips the value it is about.
func (d *decoder) fail(path, msg string) error {
	if _, seen := d.errs[path]; !seen {
		d.errs[path] = msg
	}
	return d.dec.SkipValue()
}

// kindName names a JSON kind for "must be X, not Y" messages.
func kindName(k jsontext.Kind) string {
	switch k { //nolint:exhaustive // only value kinds reach here; the rest are not values
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case '{':
		return "an object"
	case '[':
		return "an array"
	default:
		return "null"
	}
}

// value decodes the next value into v, recording field errors.
func (d *decoder) value(path string, v reflect.Value) error {
	kind := d.dec.PeekKind()
	t := v.Type()

	// null leaves a value as it was, as encoding/json does: for the
	// optional fields of Handoff's requests it means "not given". The body
	// itself, or an item of an array it holds (a batch's task), is not
	// optional that way: null there is not the object asked for.
	if kind == 'n' {
		if isPlainObject(t) && isBodyOrItem(path) {
			return d.fail(path, "must be an object, not null")
		}
		if t == rawMessageType {
			raw, err := d.dec.ReadValue()
			v.SetBytes(bytes.Clone(raw))
			return err
		}
		if t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface || t.Kind() == reflect.Map || t.Kind() == reflect.Slice {
			v.SetZero()
		}
		_, err := d.dec.ReadToken()
		return err
	}

	switch {
	case t == rawMessageType:
		raw, err := d.dec.ReadValue()
		if err != nil {
			return err
		}
		if !validText(raw) {
			d.errs[path] = "must hold only valid UTF-8 text: invalid UTF-8 or an unpaired surrogate escape (\\ud800-\\udfff) is not allowed"
			return nil
		}
		v.SetBytes(bytes.Clone(raw))
		return nil
	case t == timeType:
		return d.timeValue(path, kind, v)
	case t.Kind() == reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return d.value(path, v.Elem())
	case t.Kind() == reflect.Interface && t.NumMethod() == 0:
		raw, err := d.dec.ReadValue()
		if err != nil {
			return err
		}
		var x any
		if err := json.Unmarshal(raw, &x); err != nil {
			return err
		}
		v.Set(reflect.ValueOf(&x).Elem())
		return nil
	case reflect.PointerTo(t).Implements(unmarshalerType):
		raw, err := d.dec.ReadValue()
		if err != nil {
			return err
		}
		if err := v.Addr().Interface().(json.Unmarshaler).UnmarshalJSON(raw); err != nil {
			d.errs[path] = err.Error()
		}
		return nil
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		if kind != '"' {
			return d.fail(path, "must be a string, not "+kindName(kind))
		}
		tok, err := d.dec.ReadToken()
		if err != nil {
			return err
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(tok.String())); err != nil {
			d.errs[path] = err.Error()
		}
		return nil
	}

	switch t.Kind() { //nolint:exhaustive // the kinds JSON can fill; the rest are the default's error
	case reflect.Struct:
		return d.structValue(path, kind, v)
	case reflect.Map:
		return d.mapValue(path, kind, v)
	case reflect.Slice, reflect.Array:
		return d.sliceValue(path, kind, v)
	case reflect.String:
		if kind != '"' {
			return d.fail(path, "must be a string, not "+kindName(kind))
		}
		raw, err := d.dec.ReadValue()
		if err != nil {
			return err
		}
		if !validText(raw) {
			d.errs[path] = invalidTextMessage
			return nil
		}
		str, err := unquote(raw)
		if err != nil {
			return err
		}
		v.SetString(str)
		return nil
	case reflect.Bool:
		if kind != 't' && kind != 'f' {
			return d.fail(path, "must be true or false, not "+kindName(kind))
		}
		tok, err := d.dec.ReadToken()
		v.SetBool(tok.Bool())
		return err
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return d.intValue(path, kind, v)
	case reflect.Float32, reflect.Float64:
		if kind != '0' {
			return d.fail(path, "must be a number, not "+kindName(kind))
		}
		tok, err := d.dec.ReadToken()
		if err != nil {
			return err
		}
		f, perr := strconv.ParseFloat(tok.String(), t.Bits())
		if perr != nil {
			d.errs[path] = fmt.Sprintf("%s is out of range for a number", Shorten(tok.String()))
			return nil
		}
		v.SetFloat(f)
		return nil
	default:
		return fmt.Errorf("jsonstrict: unsupported type %s at %q", t, path)
	}
}

func (d *decoder) intValue(path string, kind jsontext.Kind, v reflect.Value) error {
	if kind != '0' {
		return d.fail(path, "must be an integer, not "+kindName(kind))
	}
	tok, err := d.dec.ReadToken()
	if err != nil {
		return err
	}
	text := tok.String()
	t := v.Type()
	unsigned := t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64
	// JSON has one number type: 1 and 1.0 are the same value. An integral
	// value in any notation is taken; 1.5 is not an integer, nor is
	// 1.0000000000000001, which a float64 would round to 1.
	digits, integral := integerText(text)
	if !integral {
		d.errs[path] = "must be an integer, not " + Shorten(text)
		return nil
	}
	if unsigned {
		n, err := strconv.ParseUint(digits, 10, t.Bits())
		if err != nil {
			d.errs[path] = fmt.Sprintf("%s is out of range: must be an integer from 0 to %d", Shorten(text), uint64(1)<<(t.Bits()-1)*2-1)
			return nil
		}
		v.SetUint(n)
		return nil
	}
	n, err := strconv.ParseInt(digits, 10, t.Bits())
	if err != nil {
		hi := int64(1)<<(t.Bits()-1) - 1
		d.errs[path] = fmt.Sprintf("%s is out of range: must be an integer from %d to %d", Shorten(text), -hi-1, hi)
		if t.Bits() == 64 {
			// The type's bounds say nothing useful here; the field's own
			// range is the caller's to state.
			d.errs[path] = Shorten(text) + " is out of range for an integer"
		}
		return nil
	}
	v.SetInt(n)
	return nil
}

// integerText reads a JSON number literal exactly, without a float: the
// integer it denotes in plain decimal digits ("-" first if negative), or
// integral false if it denotes no integer (1.5, 1e-1). When the integer
// has more than 20 digits, more than any Go integer holds, digits is empty
// (which strconv refuses), so that 1e999999999 is never written out.
func integerText(lit string) (digits string, integral bool) {
	if !strings.ContainsAny(lit, ".eE") {
		// Plain digits, the common case: JSON allows no leading zeros, so
		// they are the integer as strconv reads it.
		return lit, true
	}
	neg := strings.HasPrefix(lit, "-")
	lit = strings.TrimPrefix(lit, "-")
	mantissa, exponent, hasExp := strings.Cut(strings.ReplaceAll(lit, "E", "e"), "e")
	whole, frac, _ := strings.Cut(mantissa, ".")
	// The value is (whole frac) × 10^(exponent − len(frac)).
	digits = strings.TrimLeft(whole+frac, "0")
	if digits == "" {
		return "0", true
	}
	exp := -len(frac)
	if hasExp {
		// Any exponent beyond ±2^40 decides the same as ±2^40 (a body
		// has far fewer digits), and the sums below cannot overflow.
		const bound = 1 << 40
		e, err := strconv.Atoi(exponent)
		switch {
		case err != nil && strings.HasPrefix(exponent, "-"), e < -bound:
			e = -bound
		case err != nil, e > bound:
			e = bound
		}
		exp += e
	}
	trimmed := strings.TrimRight(digits, "0")
	exp += len(digits) - len(trimmed)
	switch {
	case exp < 0:
		return "", false
	case len(trimmed)+exp > 20:
		return "", true
	}
	digits = trimmed + strings.Repeat("0", exp)
	if neg {
		digits = "-" + digits
	}
	return digits, true
}

func (d *decoder) timeValue(path string, kind jsontext.Kind, v reflect.Value) error {
	const want = "must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z"
	if kind != '"' {
		return d.fail(path, want+", not "+kindName(kind))
	}
	tok, err := d.dec.ReadToken()
	if err != nil {
		return err
	}
	ts, perr := ParseTime(tok.String())
	if perr != nil {
		d.errs[path] = want + ": " + perr.Error()
		return nil
	}
	v.Set(reflect.ValueOf(ts))
	return nil
}

// Given lists the JSON names of the fields an object was decoded from,
// those given as null left out (null means "not given"). A struct field of
// this type (tagged `json:"-"`) is filled by Decode, so that a request can
// tell a field sent empty ("queue": "") from one left out.
type Given []string

// Has reports whether the field named name was given.
func (g Given) Has(name string) bool { return slices.Contains(g, name) }

var givenType = reflect.TypeFor[Given]()

// typeFields is what Decode needs of a struct type: its JSON names'
// field indexes, and the index of its Given field (-1 for none).
type typeFields struct {
	byName map[string]int
	// names are the JSON names by field index, for Given.
	names []string
	given int
}

// fieldsByType caches structFields: a request type's fields are looked up
// for every object of the body, a thousand in a full batch.
var fieldsByType sync.Map // reflect.Type → *typeFields, read only once stored

// structFields maps JSON names to field indexes, as encoding/json's tags
// name them (exported fields only; "-" skipped), and finds the Given field.
func structFields(t reflect.Type) *typeFields {
	if fields, ok := fieldsByType.Load(t); ok {
		return fields.(*typeFields) //nolint:forcetypeassert // only this function stores
	}
	info := &typeFields{byName: map[string]int{}, names: make([]string, t.NumField()), given: -1}
	fields := info.byName
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Type == givenType {
			info.given = i
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			tagName, _, _ := strings.Cut(tag, ",")
			if tagName == "-" {
				continue
			}
			if tagName != "" {
				name = tagName
			}
		}
		fields[name] = i
		info.names[i] = name
	}
	fieldsByType.Store(t, info)
	return info
}

func (d *decoder) structValue(path string, kind jsontext.Kind, v reflect.Value) error {
	if kind != '{' {
		return d.fail(path, "must be an object, not "+kindName(kind))
	}
	info := structFields(v.Type())
	fields := info.byName
	if _, err := d.dec.ReadToken(); err != nil {
		return err
	}
	for d.dec.PeekKind() != '}' {
		name, ok, err := d.name(path)
		if err != nil {
			return err
		}
		if !ok {
			if err := d.dec.SkipValue(); err != nil {
				return err
			}
			continue
		}
		i, ok := fields[name]
		if !ok {
			// The name is echoed as the error's key: cut like any echo.
			if err := d.fail(join(path, Shorten(name)), "unknown field"+hint(name, fields)); err != nil {
				return err
			}
			continue
		}
		if info.given >= 0 && d.dec.PeekKind() != 'n' {
			g := v.Field(info.given).Addr().Interface().(*Given) //nolint:forcetypeassert // the field's type is Given
			if *g == nil {
				*g = make(Given, 0, len(fields))
			}
			*g = append(*g, info.names[i])
		}
		if err := d.value(join(path, name), v.Field(i)); err != nil {
			return err
		}
	}
	_, err := d.dec.ReadToken()
	return err
}

// name reads an object member's name; ok is false, with the error
// recorded against the object, when the name is not valid text.
func (d *decoder) name(path string) (string, bool, error) {
	raw, err := d.dec.ReadValue()
	if err != nil {
		return "", false, err
	}
	if !validText(raw) {
		if _, seen := d.errs[path]; !seen {
			d.errs[path] = "has a field name that is not valid UTF-8 text"
		}
		return "", false, nil
	}
	name, err := unquote(raw)
	if err != nil {
		return "", false, err
	}
	return name, true, nil
}

// unquote decodes a raw JSON string that validText passed. Most names and
// values have no escape, and are the bytes between the quotes.
func unquote(raw []byte) (string, error) {
	if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var str string
	err := json.Unmarshal(raw, &str)
	return str, err
}

// hint names the field a case variant was probably meant to be.
func hint(name string, fields map[string]int) string {
	for known := range fields {
		if strings.EqualFold(known, name) {
			return fmt.Sprintf(" (names are case-sensitive: did you mean %q?)", known)
		}
	}
	return ""
}

func (d *decoder) mapValue(path string, kind jsontext.Kind, v reflect.Value) error {
	t := v.Type()
	if kind != '{' || t.Key().Kind() != reflect.String {
		return d.fail(path, "must be an object, not "+kindName(kind))
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return err
	}
	for d.dec.PeekKind() != '}' {
		// An empty object leaves the map nil, as omitempty writes it: a
		// value and its encoding decode the same.
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		key, ok, err := d.name(path)
		if err != nil {
			return err
		}
		if !ok {
			if err := d.dec.SkipValue(); err != nil {
				return err
			}
			continue
		}
		elem := reflect.New(t.Elem()).Elem()
		if err := d.value(join(path, Shorten(key)), elem); err != nil {
			return err
		}
		v.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), elem)
	}
	_, err := d.dec.ReadToken()
	return err
}

func (d *decoder) sliceValue(path string, kind jsontext.Kind, v reflect.Value) error {
	t := v.Type()
	if kind != '[' {
		return d.fail(path, "must be an array, not "+kindName(kind))
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return err
	}
	if t.Kind() == reflect.Slice {
		v.Set(reflect.MakeSlice(t, 0, 0))
	}
	for i := 0; d.dec.PeekKind() != ']'; i++ {
		elemPath := path + "[" + strconv.Itoa(i) + "]"
		if t.Kind() == reflect.Array {
			if i >= v.Len() {
				if err := d.fail(elemPath, fmt.Sprintf("too many items: at most %d", v.Len())); err != nil {
					return err
				}
				continue
			}
			if err := d.value(elemPath, v.Index(i)); err != nil {
				return err
			}
			continue
		}
		elem := reflect.New(t.Elem()).Elem()
		if err := d.value(elemPath, elem); err != nil {
			return err
		}
		v.Set(reflect.Append(v, elem))
	}
	_, err := d.dec.ReadToken()
	return err
}

// invalidTextMessage is the error for a string that is not valid Unicode.
const invalidTextMessage = "must be valid UTF-8 text: invalid UTF-8 or an unpaired surrogate escape (\\ud800-\\udfff) is not allowed"

// validText reports whether a raw JSON string (quotes included) holds valid
// UTF-8 and only paired surrogate escapes: text that decodes without
// encoding/json's silent U+FFFD.
func validText(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++
		if i >= len(raw) || raw[i] != 'u' {
			continue
		}
		r := hex4(raw, i+1)
		i += 4
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return false
		case r >= 0xD800 && r <= 0xDBFF:
			if i+2 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
				return false
			}
			if low := hex4(raw, i+3); low < 0xDC00 || low > 0xDFFF {
				return false
			}
			i += 6
		}
	}
	return true
}

// hex4 reads four hex digits at raw[at:], -1 if there are none; the syntax
// check has already made sure that an escape has them.
func hex4(raw []byte, at int) int {
	if at+4 > len(raw) {
		return -1
	}
	n, err := strconv.ParseUint(string(raw[at:at+4]), 16, 32)
	if err != nil {
		return -1
	}
	return int(n)
}

// Shorten cuts a value echoed in a message to 64 bytes (at a rune
// boundary, with "…"), as every echo of the API is: a client's 1 MiB
// mistake is not sent back to it.
func Shorten(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// Quote quotes s for an error message, shortened to a readable length.
func Quote(s string) string {
	return strconv.Quote(Shorten(s))
}

// ParseTime parses an RFC 3339 time strictly: Go's time.RFC3339 layout, plus
// a leap second (":60", read as the first instant of the next minute, since
// Go's time has no leap seconds), minus offsets beyond ±23:59 that Go's
// parser lets through.
func ParseTime(s string) (time.Time, error) {
	const layout = time.RFC3339Nano
	orig, leap := s, false
	if len(s) > 19 && s[16:19] == ":60" {
		leap = true
		s = s[:17] + "59" + s[19:]
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s is not a valid time", Quote(orig))
	}
	if off := s[len(s)-1]; off != 'Z' && off != 'z' {
		zone := s[len(s)-6:]
		hours, _ := strconv.Atoi(zone[1:3])
		minutes, _ := strconv.Atoi(zone[4:6])
		if hours > 23 || minutes > 59 {
			return time.Time{}, fmt.Errorf("offset %s is out of range (at most ±23:59)", zone)
		}
	}
	if leap {
		// A leap second is inserted only as the last second of a UTC day.
		if u := t.UTC(); u.Hour() != 23 || u.Minute() != 59 {
			return time.Time{}, fmt.Errorf("%s is not a valid time: a leap second is 23:59:60 UTC", Quote(orig))
		}
		t = t.Truncate(time.Second).Add(time.Second)
	}
	return t, nil
}
