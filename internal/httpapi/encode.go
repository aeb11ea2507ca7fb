package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// encode writes v as a JSON response with the given status.
func encode[T any](w http.ResponseWriter, status int, v T) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	return nil
}

// decode reads the request body as one JSON object of type T. Malformed
// JSON is a 400; well-formed JSON that does not fit T (unknown fields,
// wrong types) is a 422; a body over the limit is a 413.
func decode[T any](r *http.Request) (T, error) {
	var v T
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var maxBytesErr *http.MaxBytesError
		if errors.As(err, &maxBytesErr) {
			return v, err
		}
		return v, badRequest("request body must hold exactly one JSON object")
	}
	return v, nil
}

func decodeError(err error) error {
	var (
		syntaxErr   *json.SyntaxError
		typeErr     *json.UnmarshalTypeError
		maxBytesErr *http.MaxBytesError
	)
	switch {
	case errors.As(err, &maxBytesErr):
		return err
	case errors.Is(err, io.EOF):
		return badRequest("request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: the body ends before the object does")
	case errors.As(err, &syntaxErr):
		return badRequest(fmt.Sprintf("malformed JSON at byte %d: %s", syntaxErr.Offset, syntaxErr.Error()))
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return badRequest("request body must be a JSON object")
		}
		return &requestError{
			status: http.StatusUnprocessableEntity,
			detail: fmt.Sprintf("field %q has the wrong type: got %s", typeErr.Field, typeErr.Value),
			fields: map[string]string{typeErr.Field: "wrong type: got " + typeErr.Value},
		}
	}
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name := strings.Trim(field, `"`)
		return &requestError{
			status: http.StatusUnprocessableEntity,
			detail: "unknown field " + field,
			fields: map[string]string{name: "unknown field"},
		}
	}
	var timeErr *time.ParseError
	if errors.As(err, &timeErr) || strings.Contains(err.Error(), "Time.UnmarshalJSON") {
		return &requestError{
			status: http.StatusUnprocessableEntity,
			detail: "run_at must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z",
			fields: map[string]string{"run_at": "must be an RFC 3339 time"},
		}
	}
	return badRequest("malformed JSON: " + err.Error())
}
