package task

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends t as encoding/json marshals it, byte for byte (HTML
// characters escaped, as json.Marshal and json.Encoder do by default), and
// fails where encoding/json would: a Result, Progress or Args that is not
// valid JSON, a time outside years 0-9999 or with an offset of a day or
// more.
//
// It exists for POST /v1/tasks/batch, whose answer of 1,000 tasks
// encoding/json spent a fifth of the server's CPU on: reflection, and
// compacting again the output of each time.Time and json.RawMessage it
// marshals (docs/performance.md, "Issue 11, fifth session"). A MarshalJSON
// on Task cannot save it: encoding/json compacts a Marshaler's output too.
// Callers that write a whole response of tasks use it; TestAppendJSON and
// FuzzAppendJSON hold it to encoding/json's output.
func AppendJSON(dst []byte, t *Task) ([]byte, error) {
	var err error
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, t.ID, 10)
	dst = append(dst, `,"kind":`...)
	dst = appendString(dst, t.Kind)
	dst = append(dst, `,"state":`...)
	dst = appendString(dst, t.State)
	dst = append(dst, `,"args":`...)
	if dst, err = appendRaw(dst, t.Args); err != nil {
		return nil, err
	}
	dst = append(dst, `,"queue":`...)
	dst = appendString(dst, t.Queue)
	dst = append(dst, `,"priority":`...)
	dst = strconv.AppendInt(dst, int64(t.Priority), 10)
	dst = append(dst, `,"attempt":`...)
	dst = strconv.AppendInt(dst, int64(t.Attempt), 10)
	dst = append(dst, `,"max_attempts":`...)
	dst = strconv.AppendInt(dst, int64(t.MaxAttempts), 10)
	dst = append(dst, `,"errors":`...)
	if t.Errors == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i := range t.Errors {
			e := &t.Errors[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"attempt":`...)
			dst = strconv.AppendInt(dst, int64(e.Attempt), 10)
			dst = append(dst, `,"at":`...)
			if dst, err = appendTime(dst, e.At); err != nil {
				return nil, err
			}
			dst = append(dst, `,"error":`...)
			dst = appendString(dst, e.Error)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"result":`...)
	if dst, err = appendRaw(dst, t.Result); err != nil {
		return nil, err
	}
	dst = append(dst, `,"progress":`...)
	if dst, err = appendRaw(dst, t.Progress); err != nil {
		return nil, err
	}
	dst = append(dst, `,"created_at":`...)
	if dst, err = appendTime(dst, t.CreatedAt); err != nil {
		return nil, err
	}
	dst = append(dst, `,"scheduled_at":`...)
	if dst, err = appendTime(dst, t.ScheduledAt); err != nil {
		return nil, err
	}
	for _, f := range [...]struct {
		name string
		at   *time.Time
	}{{`,"started_at":`, t.StartedAt}, {`,"finished_at":`, t.FinishedAt}, {`,"cancel_requested_at":`, t.CancelRequestedAt}} {
		dst = append(dst, f.name...)
		if f.at == nil {
			dst = append(dst, "null"...)
		} else if dst, err = appendTime(dst, *f.at); err != nil {
			return nil, err
		}
	}
	dst = append(dst, `,"callback_url":`...)
	if t.CallbackURL == nil {
		dst = append(dst, "null"...)
	} else {
		dst = appendString(dst, *t.CallbackURL)
	}
	return append(dst, '}'), nil
}

// appendTime appends t as time.Time's MarshalJSON writes it.
func appendTime(dst []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y > 9999 {
		return nil, errors.New("Time.MarshalJSON: year outside of range [0,9999]")
	}
	if _, offset := t.Zone(); offset <= -24*3600 || offset >= 24*3600 {
		return nil, errors.New("Time.MarshalJSON: timezone hour outside of range [0,23]")
	}
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"'), nil
}

// appendRaw appends raw as encoding/json writes a json.RawMessage: null when
// nil, otherwise compacted, with HTML characters escaped. Raw JSON from
// Postgres's jsonb has a space after each colon and comma, so it most often
// takes the slow path; "{}" and numbers do not.
func appendRaw(dst []byte, raw json.RawMessage) ([]byte, error) {
	if raw == nil {
		return append(dst, "null"...), nil
	}
	if len(raw) <= 2 && (string(raw) == "{}" || string(raw) == "[]" || (len(raw) == 1 && raw[0] >= '0' && raw[0] <= '9')) {
		return append(dst, raw...), nil
	}
	buf := bytes.NewBuffer(dst)
	start := buf.Len()
	if err := json.Compact(buf, raw); err != nil {
		return nil, err
	}
	out := buf.Bytes()
	if bytes.ContainsAny(out[start:], "<>&\u2028\u2029") {
		compacted := bytes.Clone(out[start:])
		buf.Truncate(start)
		json.HTMLEscape(buf, compacted)
		out = buf.Bytes()
	}
	return out, nil
}

// appendString appends s as a JSON string the way encoding/json does with
// HTML escaping on (its default): <, > and & as \u003c, \u003e, \u0026;
// U+2028 and U+2029 escaped; each invalid UTF-8 byte as \ufffd.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
