package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/task"
)

type batchResult struct {
	Status  int           `json:"status"`
	Task    *task.Task    `json:"task"`
	Problem *batchProblem `json:"problem"`
}

type batchProblem struct {
	problemBody
	TaskID int64 `json:"task_id"`
}

func decodeBatch(t *testing.T, r *response, n int) []batchResult {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	var body struct {
		Results []batchResult `json:"results"`
	}
	require.NoError(t, json.Unmarshal(r.body, &body))
	require.Len(t, body.Results, n)
	for i, res := range body.Results {
		if res.Status == http.StatusOK || res.Status == http.StatusAccepted {
			require.NotNil(t, res.Task, "result %d", i)
			require.Nil(t, res.Problem, "result %d", i)
			continue
		}
		require.Nil(t, res.Task, "result %d", i)
		require.NotNil(t, res.Problem, "result %d", i)
		require.Equal(t, res.Status, res.Problem.Status)
		require.Equal(t, http.StatusText(res.Status), res.Problem.Title)
	}
	return body.Results
}

func TestTaskBatch(t *testing.T) {
	t.Parallel()

	t.Run("EachItemOnItsOwn", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		held := decodeTask(t, b.do(t, http.MethodPost, "/v1/tasks", `{"kind": "noop", "idempotency_key": "held"}`))

		r := b.do(t, http.MethodPost, "/v1/tasks/batch", `{"tasks": [
			{"kind": "sleep", "args": {"seconds": 1}, "priority": 2},
			{"kind": "sleep", "args": {"seconds": 7200}},
			{"kind": "noop", "idempotency_key": "held"},
			{"kind": "sleep", "args": {"seconds": 1}, "idempotency_key": "held"},
			{"kind": "noop", "Queue": "default"},
			"noop",
			{"kind": "noop", "idempotency_key": "twice"},
			{"kind": "noop", "idempotency_key": "twice", "max_attempts": 25},
			{"kind": "noop", "idempotency_key": "twice", "max_attempts": 3},
			{"kind": "no_such_kind"}
		]}`)
		res := decodeBatch(t, r, 10)

		require.Equal(t, http.StatusAccepted, res[0].Status)
		require.Equal(t, "sleep", res[0].Task.Kind)
		require.Equal(t, 2, res[0].Task.Priority)
		require.Equal(t, http.StatusUnprocessableEntity, res[1].Status)
		require.Contains(t, res[1].Problem.Errors, "args.seconds")
		require.Equal(t, http.StatusOK, res[2].Status, "a repeat of the held key")
		require.Equal(t, held.ID, res[2].Task.ID)
		require.Equal(t, http.StatusConflict, res[3].Status)
		require.Equal(t, held.ID, res[3].Problem.TaskID)
		require.Equal(t, http.StatusUnprocessableEntity, res[4].Status)
		require.Contains(t, res[4].Problem.Errors, "Queue")
		require.Equal(t, http.StatusUnprocessableEntity, res[5].Status, "an item that is not an object")
		require.Contains(t, res[5].Problem.Errors, "tasks[5]", "named by its place, not by an empty field")
		require.NotContains(t, res[5].Problem.Errors, "")
		require.Contains(t, res[5].Problem.Detail, "tasks[5]: the task must be an object")
		require.Equal(t, http.StatusAccepted, res[6].Status)
		require.Equal(t, http.StatusOK, res[7].Status, "same request, defaults spelled out")
		require.Equal(t, res[6].Task.ID, res[7].Task.ID)
		require.Equal(t, http.StatusConflict, res[8].Status)
		require.Equal(t, res[6].Task.ID, res[8].Problem.TaskID)
		require.Equal(t, http.StatusUnprocessableEntity, res[9].Status)
		require.Contains(t, res[9].Problem.Errors, "kind")

		// Written: the held task, items 0 and 6, each with its job.
		require.Equal(t, 2*3, countRows(t, b.pool))
		for _, i := range []int{0, 6} {
			got := decodeTask(t, b.do(t, http.MethodGet, "/v1/tasks/"+strconv.FormatInt(res[i].Task.ID, 10), ""))
			require.Equal(t, res[i].Task.ID, got.ID)
		}
	})

	t.Run("ManyTasks", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		items := make([]string, task.BulkMax)
		for i := range items {
			items[i] = fmt.Sprintf(`{"kind": "sleep", "args": {"seconds": %d}}`, i%3600)
		}
		res := decodeBatch(t, b.do(t, http.MethodPost, "/v1/tasks/batch", `{"tasks": [`+strings.Join(items, ",")+`]}`), task.BulkMax)
		seen := map[int64]bool{}
		for i, r := range res {
			require.Equal(t, http.StatusAccepted, r.Status)
			require.JSONEq(t, fmt.Sprintf(`{"seconds": %d}`, i%3600), string(r.Task.Args), "result %d is its own item's task", i)
			require.False(t, seen[r.Task.ID])
			seen[r.Task.ID] = true
		}
		require.Equal(t, 2*task.BulkMax, countRows(t, b.pool))
	})

	t.Run("EnvelopeErrorsWriteNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		tooMany := `{"tasks": [` + strings.Repeat(`{"kind": "noop"},`, task.BulkMax) + `{"kind": "noop"}]}`
		huge := `{"tasks": [{"kind": "noop", "args": {}, "callback_url": "https://x.example/` + strings.Repeat("a", 1<<20) + `"}]}`
		for _, tc := range []struct {
			name   string
			body   string
			header []string
			status int
			detail string
		}{
			{"BadJSON", `{"tasks": [{"kind": "noop"}`, nil, http.StatusBadRequest, "malformed JSON"},
			{"DuplicateFieldInItem", `{"tasks": [{"kind": "noop", "kind": "noop"}]}`, nil, http.StatusBadRequest, "kind"},
			{"NotAnObject", `[{"kind": "noop"}]`, nil, http.StatusBadRequest, "send a JSON object"},
			{"UnknownField", `{"tasks": [{"kind": "noop"}], "atomic": true}`, nil, http.StatusUnprocessableEntity, "atomic"},
			{"TasksNotAnArray", `{"tasks": {"kind": "noop"}}`, nil, http.StatusUnprocessableEntity, "tasks"},
			{"NoTasks", `{}`, nil, http.StatusUnprocessableEntity, "1 to 1000 tasks"},
			{"EmptyTasks", `{"tasks": []}`, nil, http.StatusUnprocessableEntity, "1 to 1000 tasks"},
			{"TooManyTasks", tooMany, nil, http.StatusUnprocessableEntity, "not 1001"},
			{"TooLarge", huge, nil, http.StatusRequestEntityTooLarge, "larger than 1 MiB"},
			{"IdempotencyKeyHeader", `{"tasks": [{"kind": "noop"}]}`, []string{"Idempotency-Key", "k"}, http.StatusUnprocessableEntity, "idempotency_key in the body"},
			{"NotJSON", `{"tasks": [{"kind": "noop"}]}`, []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType, "must be JSON"},
			{"CrossSite", `{"tasks": [{"kind": "noop"}]}`, []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden, "cross-origin"},
			{"QueryParameter", `{"tasks": [{"kind": "noop"}]}`, nil, http.StatusBadRequest, "atomic"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				path := "/v1/tasks/batch"
				if tc.name == "QueryParameter" {
					path += "?atomic=1"
				}
				requireProblem(t, b.do(t, http.MethodPost, path, tc.body, tc.header...), tc.status, tc.detail)
			})
		}
		t.Cleanup(func() {
			var n int
			require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT (SELECT count(*) FROM tasks) + (SELECT count(*) FROM river_job)").Scan(&n))
			require.Zero(t, n, "a refused batch wrote nothing")
		})
	})

	t.Run("MethodNotAllowed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			r := b.do(t, method, "/v1/tasks/batch", "")
			requireProblem(t, r, http.StatusMethodNotAllowed, "use POST")
			require.Equal(t, "POST", r.header.Get("Allow"))
		}
		r := b.do(t, http.MethodHead, "/v1/tasks/batch", "")
		require.Equal(t, http.StatusMethodNotAllowed, r.status)
		// Other ids are untouched.
		requireProblem(t, b.do(t, http.MethodGet, "/v1/tasks/12345", ""), http.StatusNotFound, "no task has this id")
		r = b.do(t, http.MethodPut, "/v1/tasks/12345", "")
		require.Equal(t, "GET, HEAD", r.header.Get("Allow"))
	})
}

// TestTaskBatchTenants: a batch needs a key, creates in the key's tenant,
// and keys its idempotency per tenant.
func TestTaskBatchTenants(t *testing.T) {
	t.Parallel()
	b := authSetup(t, authSetupOpts{})
	body := `{"tasks": [{"kind": "noop", "idempotency_key": "shared"}, {"kind": "noop"}]}`

	requireProblem(t, b.do(t, http.MethodPost, "/v1/tasks/batch", body), http.StatusUnauthorized, "a valid API key is required")
	require.Zero(t, countRows(t, b.pool))

	resA := decodeBatch(t, b.do(t, http.MethodPost, "/v1/tasks/batch", body, bearer(b.keyA)...), 2)
	resB := decodeBatch(t, b.do(t, http.MethodPost, "/v1/tasks/batch", body, bearer(b.keyB)...), 2)
	for i := range 2 {
		require.Equal(t, http.StatusAccepted, resA[i].Status)
		require.Equal(t, http.StatusAccepted, resB[i].Status, "the key is B's own")
		require.NotEqual(t, resA[i].Task.ID, resB[i].Task.ID)
		id := strconv.FormatInt(resA[i].Task.ID, 10)
		requireProblem(t, b.do(t, http.MethodGet, "/v1/tasks/"+id, "", bearer(b.keyB)...), http.StatusNotFound, "no task has this id")
		require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/v1/tasks/"+id, "", bearer(b.keyA)...).status)
	}
	var tenants []string
	rows, err := b.pool.Query(t.Context(), `SELECT tenant FROM tasks ORDER BY id`)
	require.NoError(t, err)
	for rows.Next() {
		var tenant string
		require.NoError(t, rows.Scan(&tenant))
		tenants = append(tenants, tenant)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"a", "a", "b", "b"}, tenants)

	// The cap of unfinished tasks applies per item.
	capped := authSetup(t, authSetupOpts{maxUnfinished: 1})
	res := decodeBatch(t, capped.do(t, http.MethodPost, "/v1/tasks/batch", `{"tasks": [{"kind": "noop"}, {"kind": "noop"}]}`, bearer(capped.keyA)...), 2)
	require.Equal(t, http.StatusAccepted, res[0].Status)
	require.Equal(t, http.StatusTooManyRequests, res[1].Status)
	require.Contains(t, res[1].Problem.Detail, "too many unfinished tasks")
}
