package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// list measures figure 6: one client paging GET /v1/tasks?state=completed
// with listRows rows in tasks, at the newest page and deep in the table.
func (b *bench) list(ctx context.Context) (err error) {
	opts := b.opts
	dbURL, pool, err := b.dbs.newDB(ctx, "list", 0, benchPoolConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	t0 := time.Now()
	if err := loadListTasks(ctx, pool, opts.listRows); err != nil {
		return err
	}
	b.logger.Info("tasks loaded", slog.Int("rows", opts.listRows), slog.Duration("took", time.Since(t0).Round(time.Millisecond)))

	srv, err := b.servers.start(ctx, dbURL, opts.tune.env())
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.servers.stop(srv)) }()
	client := newHTTPClient(1)
	defer client.CloseIdleConnections()

	// The cursor is opaque to clients; the bench builds one the way the
	// API does (internal/httpapi encodeCursor) to start a tenth of the way
	// from the oldest row without paging through 900k rows first, and
	// checks that the server reads it as meant.
	deepID := int64(opts.listRows / 10)
	deep := base64.RawURLEncoding.EncodeToString([]byte("t" + strconv.FormatInt(deepID, 10)))
	for _, page := range []struct {
		name, query string
		below       int64
	}{
		{"newest page", "state=completed&limit=50", int64(opts.listRows) + 1},
		{"deep cursor", "state=completed&limit=50&after=" + deep, deepID},
	} {
		get := func(ctx context.Context) error {
			return getList(ctx, client, srv.url+"/v1/tasks?"+page.query, page.below)
		}
		// Warm the connection, the server's statements and Postgres's cache.
		for range 50 {
			if err := get(ctx); err != nil {
				return err
			}
		}
		var lat latencies
		for range opts.listRequests {
			t := time.Now()
			if err := get(ctx); err != nil {
				return err
			}
			lat = append(lat, time.Since(t))
		}
		p99 := lat.quantile(0.99)
		b.report.check(row{
			figure: fmt.Sprintf("list p99, state=completed limit=50, %s rows, %s", countLabel(opts.listRows), page.name),
			value:  fmt.Sprintf("%s (p50 %s)", ms(p99), ms(lat.quantile(0.5))),
			target: "≤ 20 ms",
		}, p99 <= 20*time.Millisecond)
	}
	return nil
}

// getList fetches one page and checks that it is a full page of completed
// tasks, newest first, all below the cursor.
func getList(ctx context.Context, client *http.Client, url string, below int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read list: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d: %s", url, resp.StatusCode, body)
	}
	var page struct {
		Tasks []createdTask `json:"tasks"`
		Next  *string       `json:"next"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return fmt.Errorf("decode list: %w", err)
	}
	if len(page.Tasks) != 50 || page.Next == nil {
		return fmt.Errorf("GET %s: %d tasks, want a full page of 50 with a next cursor", url, len(page.Tasks))
	}
	prev := below
	for _, t := range page.Tasks {
		if t.State != "completed" || t.ID >= prev {
			return fmt.Errorf("GET %s: task %d (%s) out of place after %d", url, t.ID, t.State, prev)
		}
		prev = t.ID
	}
	return nil
}
