package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/handoff/handoff/internal/jsonstrict"
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

// decode reads the request body, which readBody has already read within its
// deadline and size limit, as one JSON value of type T with the API's one
// strict decoder (internal/jsonstrict). Malformed JSON, duplicate fields
// included, is a *requestError (400). Well-formed JSON that does not fit T
// comes back as jsonstrict.FieldsError (422) with T filled as far as it
// decoded, so that a handler can add its own checks and report every
// problem at once.
func decode[T any](r *http.Request) (T, error) {
	var v T
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return v, fmt.Errorf("read buffered body: %w", err)
	}
	err = jsonstrict.Decode(body, &v)
	var syntaxErr *jsonstrict.SyntaxError
	if errors.As(err, &syntaxErr) {
		return v, badRequest(syntaxErr.Detail)
	}
	return v, err
}

// notAnObject is the 400 for a body that is not the object asked for (the
// decoder's error of the body itself, keyed ""), telling what to send; nil
// when the body is an object.
func notAnObject(fields jsonstrict.FieldsError, send string) error {
	if msg, whole := fields[""]; whole {
		return badRequest("the body " + msg + ": " + send)
	}
	return nil
}

// takesNothing checks a request that takes no query parameters and no body
// fields (a control action such as cancel or pause).
func takesNothing(r *http.Request) error {
	if _, err := queryParams(r); err != nil {
		return err
	}
	return decodeNothing(r)
}

// decodeNothing checks the body of a request that takes none: empty, or an
// object with no fields.
func decodeNothing(r *http.Request) error {
	if r.ContentLength == 0 || r.Body == http.NoBody {
		return nil
	}
	_, err := decode[struct{}](r)
	var fieldErrs jsonstrict.FieldsError
	if errors.As(err, &fieldErrs) {
		if err := notAnObject(fieldErrs, "send no body, or {}"); err != nil {
			return err
		}
		return &requestError{
			status: http.StatusUnprocessableEntity,
			detail: "this endpoint takes no fields in its body: " + fieldErrs.Error(),
			fields: fieldErrs,
		}
	}
	return err
}
