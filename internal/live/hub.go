package live

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/handoff/handoff/internal/store"
)

// Channel is the Postgres NOTIFY channel of task changes (migration 00014).
const Channel = "handoff_task"

// ListenerApplicationName is the application_name of a Hub's listener
// connection, so that operators (and tests) can find it in pg_stat_activity.
const ListenerApplicationName = "handoff live listener"

// MaxStreamsDefault is HubOpts.MaxStreams unless set.
const MaxStreamsDefault = 10_000

// ErrTooManyStreams is returned by Subscribe when the process (or the
// AdmitFunc hook) has no room for another stream.
var ErrTooManyStreams = errors.New("too many open task streams")

// HubOpts are optional settings for NewHub; nil means defaults.
type HubOpts struct {
	// Logger receives the listener's reconnects and errors. Defaults to
	// discarding.
	Logger *slog.Logger

	// MaxStreams caps the subscriptions open at once in this process
	// (event streams and ?wait= requests). Default MaxStreamsDefault.
	MaxStreams int

	// AdmitFunc, when set, is asked before each subscription and may refuse
	// it (return an error wrapping ErrTooManyStreams); release is called
	// when the subscription closes. It is the hook for per-tenant caps once
	// API keys name tenants (issue 10).
	AdmitFunc func(ctx context.Context, taskID int64) (release func(), err error)

	// ReconnectDelay is the wait before the listener reconnects after its
	// connection failed. Default 250 ms, doubling to 5 s.
	ReconnectDelay time.Duration

	// TouchEvery is how often this process refreshes its watch rows, and
	// sweeps the rows of processes that stopped refreshing theirs
	// (5 × TouchEvery old). Default 1 minute.
	TouchEvery time.Duration
}

// Hub fans task changes out from ONE Postgres listener connection per
// process to any number of subscribers in memory. A subscriber registers a
// watch row for its task (the notify trigger skips unwatched tasks), so a
// queue pays for NOTIFY only when somebody looks.
//
// A subscription's channel only says "this task may have changed": the
// payload carries ids, never data, and the subscriber reads the row. Signals
// coalesce (the channel holds one), so a slow reader never blocks the
// listener and reads only the latest state.
type Hub struct {
	pool    *pgxpool.Pool
	queries *store.Queries
	logger  *slog.Logger
	owner   string
	opts    HubOpts

	mu      sync.Mutex
	watches map[int64]*watch
	streams int
	pid     uint32 // the listener connection's backend, 0 when down
	ready   chan struct{}

	stopping     chan struct{}
	stoppingOnce sync.Once
}

// watch is one task's subscribers in this process. mu orders the
// registration of the task's watch row against its removal.
type watch struct {
	mu         sync.Mutex
	registered bool
	subs       map[*Subscription]struct{}
}

// NewHub returns a Hub that listens with a connection configured like pool's
// and writes watch rows through pool. Run starts the listener.
func NewHub(pool *pgxpool.Pool, opts *HubOpts) *Hub {
	var o HubOpts
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = MaxStreamsDefault
	}
	if o.ReconnectDelay <= 0 {
		o.ReconnectDelay = 250 * time.Millisecond
	}
	if o.TouchEvery <= 0 {
		o.TouchEvery = time.Minute
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	return &Hub{
		pool:    pool,
		queries: store.New(),
		logger:  o.Logger,
		owner:   hex.EncodeToString(id[:]),
		opts:    o,
		watches: map[int64]*watch{},
		ready:   make(chan struct{}),

		stopping: make(chan struct{}),
	}
}

// Shutdown tells every stream to end, so that a graceful HTTP stop does not
// wait for streams that never go idle; clients reconnect elsewhere with
// Last-Event-ID. Register it with http.Server.RegisterOnShutdown.
func (h *Hub) Shutdown() {
	h.stoppingOnce.Do(func() { close(h.stopping) })
}

// Stopping is closed by Shutdown.
func (h *Hub) Stopping() <-chan struct{} { return h.stopping }

// Subscription is one subscriber's interest in one task.
type Subscription struct {
	// C receives a value when the task may have changed, and after the
	// listener reconnected (changes may have been missed). Read the task
	// after each receive.
	C <-chan struct{}

	c       chan struct{}
	hub     *Hub
	taskID  int64
	release func()
	once    sync.Once
}

// Subscribe starts watching taskID. When it returns, every later committed
// change of the task signals the subscription: read the task after
// Subscribe, not before. It returns ErrTooManyStreams when the process cap
// or AdmitFunc refuses. Close the subscription when done.
func (h *Hub) Subscribe(ctx context.Context, taskID int64) (*Subscription, error) {
	release := func() {}
	if h.opts.AdmitFunc != nil {
		r, err := h.opts.AdmitFunc(ctx, taskID)
		if err != nil {
			return nil, err
		}
		release = r
	}
	c := make(chan struct{}, 1)
	sub := &Subscription{C: c, c: c, hub: h, taskID: taskID, release: release}

	h.mu.Lock()
	if h.streams >= h.opts.MaxStreams {
		h.mu.Unlock()
		release()
		return nil, fmt.Errorf("%w: this process serves at most %d", ErrTooManyStreams, h.opts.MaxStreams)
	}
	h.streams++
	w := h.watches[taskID]
	if w == nil {
		w = &watch{subs: map[*Subscription]struct{}{}}
		h.watches[taskID] = w
	}
	w.subs[sub] = struct{}{}
	h.mu.Unlock()

	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.registered {
		err := h.queries.TaskWatchInsert(ctx, h.pool, store.TaskWatchInsertParams{TaskID: taskID, Owner: h.owner})
		if err != nil {
			sub.closeLocked(w)
			return nil, fmt.Errorf("watch task %d: %w", taskID, err)
		}
		w.registered = true
	}
	return sub, nil
}

// Close ends the subscription; the task's watch row goes with its last
// subscriber in this process.
func (s *Subscription) Close() {
	s.once.Do(func() {
		h := s.hub
		h.mu.Lock()
		w := h.watches[s.taskID]
		h.mu.Unlock()
		w.mu.Lock()
		defer w.mu.Unlock()
		s.closeLocked(w)
	})
}

// closeLocked removes s (w.mu held) and, if it was the task's last
// subscriber, the watch row, before the watch leaves the map: a subscriber
// arriving meanwhile finds this watch and waits on w.mu, then registers
// again.
func (s *Subscription) closeLocked(w *watch) {
	h := s.hub
	h.mu.Lock()
	delete(w.subs, s)
	h.streams--
	last := len(w.subs) == 0
	h.mu.Unlock()
	s.release()
	if !last {
		return
	}
	if w.registered {
		// Best effort: a row left behind only makes the task notify
		// until the sweep removes it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := h.queries.TaskWatchDelete(ctx, h.pool, store.TaskWatchDeleteParams{TaskID: s.taskID, Owner: h.owner})
		cancel()
		if err != nil {
			h.logger.Warn("unwatch task", slog.Int64("task_id", s.taskID), slog.Any("error", err))
		}
		w.registered = false
	}
	h.mu.Lock()
	if len(w.subs) == 0 && h.watches[s.taskID] == w {
		delete(h.watches, s.taskID)
	}
	h.mu.Unlock()
}

// Streams returns the number of open subscriptions.
func (h *Hub) Streams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.streams
}

// ListenerPID returns the backend process id of the listener connection, 0
// while it is down.
func (h *Hub) ListenerPID() uint32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pid
}

// Ready is closed once the listener first listens.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Run listens until ctx ends. A failed connection is replaced after
// ReconnectDelay (doubling to 5 s); after each (re)connect every watched
// task is re-registered and every subscriber signalled, so a change made
// while the listener was down is read, and no terminal state is missed.
func (h *Hub) Run(ctx context.Context) error {
	go h.touchLoop(ctx)
	delay := h.opts.ReconnectDelay
	readyOnce := sync.Once{}
	for {
		err := h.listen(ctx, func() {
			delay = h.opts.ReconnectDelay
			readyOnce.Do(func() { close(h.ready) })
		})
		if ctx.Err() != nil {
			return nil //nolint:nilerr // stopping is not a failure
		}
		h.logger.WarnContext(ctx, "live listener lost its connection; reconnecting", slog.Any("error", err), slog.String("retry_in", delay.String()))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func (h *Hub) listen(ctx context.Context, connected func()) error {
	cfg := h.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = ListenerApplicationName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		h.mu.Lock()
		h.pid = 0
		h.mu.Unlock()
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if err := h.queries.TaskEventsListen(ctx, conn); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	h.mu.Lock()
	h.pid = conn.PgConn().PID()
	h.mu.Unlock()
	if err := h.resync(ctx); err != nil {
		return err
	}
	connected()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		h.dispatch(n.Payload)
	}
}

// resync re-registers every watched task (a Postgres crash empties the
// unlogged watch table) and signals every subscriber.
func (h *Hub) resync(ctx context.Context) error {
	h.mu.Lock()
	ids := make([]int64, 0, len(h.watches))
	for id := range h.watches {
		ids = append(ids, id)
	}
	h.mu.Unlock()
	if len(ids) > 0 {
		if err := h.queries.TaskWatchInsertMany(ctx, h.pool, store.TaskWatchInsertManyParams{TaskIds: ids, Owner: h.owner}); err != nil {
			return fmt.Errorf("re-register watches: %w", err)
		}
	}
	h.mu.Lock()
	for _, w := range h.watches {
		for sub := range w.subs {
			sub.signal()
		}
	}
	h.mu.Unlock()
	return nil
}

// dispatch signals the subscribers of each id in a payload.
func (h *Hub) dispatch(payload string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for raw := range strings.SplitSeq(payload, ",") {
		id, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			continue
		}
		if w := h.watches[id]; w != nil {
			for sub := range w.subs {
				sub.signal()
			}
		}
	}
}

func (s *Subscription) signal() {
	select {
	case s.c <- struct{}{}:
	default: // a signal is already waiting: the reader will see this change too
	}
}

// touchLoop keeps this process's watch rows fresh and sweeps the rows of
// processes that died without removing theirs.
func (h *Hub) touchLoop(ctx context.Context) {
	tick := time.NewTicker(h.opts.TouchEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			cleanCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = h.queries.TaskWatchDeleteByOwner(cleanCtx, h.pool, h.owner)
			cancel()
			return
		case <-tick.C:
		}
		if err := h.queries.TaskWatchTouch(ctx, h.pool, h.owner); err != nil && ctx.Err() == nil {
			h.logger.WarnContext(ctx, "refresh task watches", slog.Any("error", err))
		}
		if _, err := h.queries.TaskWatchSweep(ctx, h.pool, time.Now().Add(-5*h.opts.TouchEvery)); err != nil && ctx.Err() == nil {
			h.logger.WarnContext(ctx, "sweep stale task watches", slog.Any("error", err))
		}
	}
}
