package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/handoff/handoff/internal/riverseam"
)

// The design phases are experiments outside the default run (-only=design),
// whose numbers docs/performance.md reports. They price the parts of the
// domain write and compare the server's design with its alternatives.

// designTriggers drains the work backlog with River alone, with and
// without recording an output, and with the server binary under each way
// of keeping tasks in step with river_job (triggerVariants).
func (b *bench) designTriggers(ctx context.Context) error {
	n := b.opts.workN
	bare, err := b.drainRiver(ctx, n, b.opts.drainLimit, false)
	if err != nil {
		return err
	}
	b.report.info(row{
		figure: fmt.Sprintf("design: River alone, %s bare jobs", countLabel(n)),
		value:  bare.String(),
	})
	recorded, err := b.drainRiver(ctx, n, b.opts.drainLimit, true)
	if err != nil {
		return err
	}
	r, _ := ratio(recorded.rate(), bare.rate())
	b.report.info(row{
		figure:   "design: River alone, RecordOutput",
		value:    recorded.String(),
		baseline: bare.String(),
		ratio:    r,
	})
	for _, variant := range append([]string{triggerMigrated}, triggerVariants()...) {
		res, err := b.drainServer(ctx, n, b.opts.drainLimit, variant, nil)
		if err != nil {
			return err
		}
		r, v := ratio(res.rate(), bare.rate())
		b.report.check(row{
			figure:   "design: server, trigger=" + variant,
			value:    res.String(),
			baseline: bare.String(),
			ratio:    r,
			target:   "≥ 0.70",
		}, v >= 0.70)
	}
	return nil
}

// designCompletion runs the server binary with internal/riverseam's inline completion off
// (River's batch completer alone) and on, at the steady load of figures 4
// and 5 and draining the work backlog, against River alone draining the
// same backlog.
func (b *bench) designCompletion(ctx context.Context) error {
	n := b.opts.workN
	bare, err := b.drainRiver(ctx, n, b.opts.drainLimit, false)
	if err != nil {
		return err
	}
	for _, mode := range []struct{ name, below string }{
		{"batched", "0"},
		{fmt.Sprintf("at once below %d/s", riverseam.DefaultIdleBelow), strconv.Itoa(riverseam.DefaultIdleBelow)},
	} {
		env := map[string]string{"INLINE_COMPLETE_BELOW": mode.below}
		pickup, e2e, err := b.serverLatency(ctx, env)
		if err != nil {
			return err
		}
		b.report.check(row{
			figure: fmt.Sprintf("design: completion %s, pickup p99 / e2e p99 at %.0f/s", mode.name, b.opts.rate),
			value:  fmt.Sprintf("%s / %s", ms(pickup.quantile(0.99)), ms(e2e.quantile(0.99))),
			target: "≤ 25 / ≤ 50 ms",
		}, pickup.quantile(0.99) <= 25*time.Millisecond && e2e.quantile(0.99) <= 50*time.Millisecond)
		res, err := b.drainServer(ctx, n, b.opts.drainLimit, triggerMigrated, env)
		if err != nil {
			return err
		}
		r, v := ratio(res.rate(), bare.rate())
		b.report.check(row{
			figure:   "design: completion " + mode.name + ", drain " + countLabel(n),
			value:    res.String(),
			baseline: bare.String() + " River",
			ratio:    r,
			target:   "≥ 0.70",
		}, v >= 0.70)
	}
	return nil
}
