package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"path"
	"runtime/debug"
	"strings"
	"time"

	"github.com/handoff/handoff/internal/jsonstrict"
)

// recoverPanics turns a panicking handler into a logged 500.
func recoverPanics(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { //nolint:errorlint // the sentinel is compared as net/http does
					panic(v)
				}
				logger.ErrorContext(r.Context(), "handler panicked", slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
				writeProblem(w, r, logger, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// limitBody caps a request body that is not JSON (the page's form): the
// handler's form parsing turns the overflow into an error.
func limitBody(maxBytes int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBytes)
		next.ServeHTTP(w, r)
	})
}

// readBody reads a request's whole body before the handler runs, so that a
// slow client is told so (408) rather than blamed on the database, and so
// that the request's timeout (withTimeout, applied after this) counts only
// the server's own work. A body must be JSON (415 otherwise: a browser can
// send text/plain or a form cross-site without asking first, but not JSON),
// at most maxBytes (413), and arrive within timeout of the headers (408).
func readBody(logger *slog.Logger, maxBytes int64, timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
			r.Body = http.NoBody
			next.ServeHTTP(w, r)
			return
		}
		if err := checkJSONContentType(r.Header.Values("Content-Type")); err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		if err := checkContentEncoding(r.Header.Values("Content-Encoding")); err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		rc := http.NewResponseController(w)
		// Not every ResponseWriter has a connection deadline (a test
		// recorder has none); the server's ReadTimeout still applies then.
		_ = rc.SetReadDeadline(time.Now().Add(timeout))
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
		if err == nil {
			_ = rc.SetReadDeadline(time.Time{})
		}
		// On an error the deadline stays where it is (passed, for a slow
		// client): net/http would otherwise wait for the rest of the body
		// before closing the connection, with no deadline at all.
		var (
			maxBytesErr *http.MaxBytesError
			netErr      net.Error
		)
		switch {
		case errors.As(err, &maxBytesErr):
			writeProblem(w, r, logger, err)
			return
		case errors.As(err, &netErr) && netErr.Timeout():
			w.Header().Set("Connection", "close")
			writeProblem(w, r, logger, &requestError{
				status: http.StatusRequestTimeout,
				detail: fmt.Sprintf("the request body did not arrive within %s; send it at once", timeout),
			})
			return
		case err != nil:
			// The client broke off or sent broken framing; it is not
			// listening for an answer, but it gets one if it is.
			w.Header().Set("Connection", "close")
			writeProblem(w, r, logger, badRequest("the request body could not be read: it ended early or was malformed"))
			return
		}
		r.ContentLength = int64(len(body))
		r.Body = io.NopCloser(bytes.NewReader(body))
		if len(body) == 0 {
			r.Body = http.NoBody
		}
		next.ServeHTTP(w, r)
	})
}

// checkJSONContentType accepts exactly one Content-Type of application/json,
// with no parameter other than charset=utf-8.
func checkJSONContentType(values []string) error {
	unsupported := &requestError{
		status: http.StatusUnsupportedMediaType,
		detail: "a request body must be JSON: send Content-Type: application/json",
	}
	if len(values) != 1 {
		return unsupported
	}
	mediaType, params, err := mime.ParseMediaType(values[0])
	if err != nil || mediaType != "application/json" {
		return unsupported
	}
	for name, value := range params {
		if name != "charset" || !strings.EqualFold(value, "utf-8") {
			return unsupported
		}
	}
	return nil
}

// checkContentEncoding refuses a body with a content coding other than
// identity (RFC 9110, 15.5.16: 415): Handoff reads bodies as sent, so a
// gzip body would be read as broken JSON, or worse as JSON that says
// something else.
func checkContentEncoding(values []string) error {
	for _, v := range values {
		for coding := range strings.SplitSeq(v, ",") {
			if c := strings.TrimSpace(coding); c != "" && !strings.EqualFold(c, "identity") {
				return &requestError{
					status: http.StatusUnsupportedMediaType,
					detail: fmt.Sprintf("Content-Encoding %q is not supported: send the body uncompressed", jsonstrict.Shorten(c)),
				}
			}
		}
	}
	return nil
}

// cleanPaths answers a path that is not in canonical form ("/v1//tasks",
// "/v1/tasks/../tasks") with a problem+json 404, where
// net/http's ServeMux would redirect it elsewhere with a 307 in HTML.
func cleanPaths(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if !strings.HasPrefix(p, "/") {
			writeProblem(w, r, logger, badRequest("the request target must be a path beginning with /"))
			return
		}
		// A trailing slash is kept: River UI's pages use it.
		if clean := path.Clean(p); clean != p && clean+"/" != p {
			writeProblem(w, r, logger, &requestError{
				status: http.StatusNotFound,
				detail: fmt.Sprintf("no such endpoint: %s is not a canonical path (no empty, . or .. segments)", jsonstrict.Quote(p)),
			})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// crossOriginProtection refuses state-changing requests that a browser
// marks as cross-site (Sec-Fetch-Site, or an Origin that is not the Host);
// clients that are not browsers send neither header and pass.
func crossOriginProtection(logger *slog.Logger, next http.Handler) http.Handler {
	protection := http.NewCrossOriginProtection()
	protection.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, logger, &requestError{
			status: http.StatusForbidden,
			detail: "cross-origin requests that change state are refused: call the API from your server, or from a page served by Handoff",
		})
	}))
	return protection.Handler(next)
}

// withTimeout bounds the request's context, which bounds every database
// call made for it.
func withTimeout(timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
