package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/handoff/handoff/internal/live"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/internal/web"
)

// FormMaxSeconds bounds the sleep the form on / may ask for: the form is a
// demonstration, open to whoever reaches the page.
const FormMaxSeconds = 60

// pageCSP allows the page its own script, style and stream, and nothing
// else: no inline script, no third party, no framing.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// addPageRoutes lists the browser pages on the root mux.
func addPageRoutes(mux *http.ServeMux, logger *slog.Logger, tasks *task.Service, lv *LiveOpts, g *gate) {
	mux.Handle("GET /{$}", handlePage(logger))
	mux.Handle("GET /tasks/{id}", handlePage(logger))
	mux.Handle("POST /tasks", crossOriginProtection(logger,
		g.form(limitBody(4<<10, handleFormCreate(logger, tasks, lv.Tokens)))))
	assets, err := fs.Sub(web.FS, ".")
	if err != nil {
		panic(err) // the embedded FS always has a root
	}
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", withPageHeaders(http.FileServerFS(assets))))
}

// handlePage serves GET / and GET /tasks/{id}: one document whose script
// shows the form or the task, reading the task from its event stream. The
// document holds no task data, so it needs no token itself.
func handlePage(logger *slog.Logger) http.Handler {
	page, err := web.FS.ReadFile("app.html")
	if err != nil {
		panic(err) // embedded at build time
	}
	return withPageHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "" {
			if _, err := pathID(r); err != nil {
				writeProblem(w, r, logger, err)
				return
			}
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if _, err := w.Write(page); err != nil {
			logger.DebugContext(r.Context(), "write page", slog.Any("error", err))
		}
	}))
}

func withPageHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", pageCSP)
		// The task page's URL carries its read token: never send it on.
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}

// formCreated is POST /tasks's JSON answer.
type formCreated struct {
	Task   *task.Task `json:"task"`
	Page   string     `json:"page"`
	Events string     `json:"events"`
}

// handleFormCreate serves POST /tasks, the form on /: it creates a sleep
// task and answers 202 with the task and its read links (to a script that
// asks for JSON) or 303 to the task's page. http.CrossOriginProtection
// refuses a cross-site submission before this runs.
func handleFormCreate(logger *slog.Logger, tasks *task.Service, tokens *live.TokenSigner) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeProblem(w, r, logger, err)
				return
			}
			writeProblem(w, r, logger, badRequest("the form could not be read: "+err.Error()))
			return
		}
		seconds, err := strconv.ParseFloat(r.PostForm.Get("seconds"), 64)
		// Written so that NaN, which ParseFloat reads, fails it.
		if err != nil || !(seconds >= 0 && seconds <= FormMaxSeconds) {
			writeProblem(w, r, logger, &requestError{
				status: http.StatusUnprocessableEntity,
				detail: fmt.Sprintf("seconds must be a number from 0 to %d", FormMaxSeconds),
				fields: map[string]string{"seconds": fmt.Sprintf("must be a number from 0 to %d", FormMaxSeconds)},
			})
			return
		}
		failTimes := 0
		if raw := r.PostForm.Get("fail_times"); raw != "" {
			failTimes, err = strconv.Atoi(raw)
			if err != nil || failTimes < 0 || failTimes > 5 {
				writeProblem(w, r, logger, &requestError{
					status: http.StatusUnprocessableEntity,
					detail: "fail_times must be an integer from 0 to 5",
					fields: map[string]string{"fail_times": "must be an integer from 0 to 5"},
				})
				return
			}
		}
		args, err := json.Marshal(map[string]any{"seconds": seconds, "fail_times": failTimes})
		if err != nil {
			writeProblem(w, r, logger, fmt.Errorf("encode args: %w", err))
			return
		}
		t, _, err := tasks.Create(r.Context(), task.CreateRequest{Kind: "sleep", Args: args})
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		page, events := readLinks(tokens, t.ID)
		if strings.Contains(r.Header.Get("Accept"), "application/json") {
			w.Header().Set("Location", page)
			respond(w, r, logger, http.StatusAccepted, formCreated{Task: t, Page: page, Events: events})
			return
		}
		http.Redirect(w, r, page, http.StatusSeeOther)
	})
}

// readLinks returns a task's page and event stream URLs, each with a fresh
// read token.
func readLinks(tokens *live.TokenSigner, id int64) (page, events string) {
	token := tokens.Sign(id)
	ids := strconv.FormatInt(id, 10)
	return "/tasks/" + ids + "?token=" + token, "/v1/tasks/" + ids + "/events?token=" + token
}

// withReadLinks adds the read links of a created task to POST /v1/tasks's
// answer, as Link headers: rel="monitor" for the page, rel="events" for
// the stream. An API client hands the page link to its user's browser,
// which never sees an API key.
func withReadLinks(tokens *live.TokenSigner, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&linkWriter{ResponseWriter: w, tokens: tokens}, r)
	})
}

// withGetReadLinks adds a task's read links to GET /v1/tasks/{id}'s answer
// for a caller with a key (or the open API), as Link headers, so that a
// task made from SQL or Go, whose creation answered no links, gets them
// too. Only for a task the caller could read (a 200), and never for a
// caller holding a read token: its link would then never expire.
func withGetReadLinks(tokens *live.TokenSigner, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if task.ReadsAnyTenant(r.Context()) {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(&linkWriter{ResponseWriter: w, tokens: tokens, path: r.URL.Path}, r)
	})
}

// linkWriter sets the Link header just before a successful answer about a
// task: a create's, whose Location names the task, or a get's, whose path
// does.
type linkWriter struct {
	http.ResponseWriter
	tokens *live.TokenSigner
	// path is the request's path when it names the task (a get); "" reads
	// the task from Location (a create).
	path string
}

func (l *linkWriter) WriteHeader(status int) {
	at := l.Header().Get("Location")
	if l.path != "" {
		at = l.path
	}
	if status == http.StatusOK || status == http.StatusAccepted {
		if raw, ok := strings.CutPrefix(at, "/v1/tasks/"); ok {
			if id, err := strconv.ParseInt(raw, 10, 64); err == nil {
				page, events := readLinks(l.tokens, id)
				l.Header().Add("Link", "<"+page+`>; rel="monitor"`)
				l.Header().Add("Link", "<"+events+`>; rel="events"`)
				// The tokens are credentials for an hour: no cache keeps them.
				l.Header().Set("Cache-Control", "no-store")
			}
		}
	}
	l.ResponseWriter.WriteHeader(status)
}

func (l *linkWriter) Unwrap() http.ResponseWriter { return l.ResponseWriter }
