package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// scratch is a one-off experiment (issues 8 and 13): the 100k drain of
// the server as configured, without the attempt guard's two triggers, and
// with METRICS_ENABLED=false, interleaved in rotating order.
func (b *bench) scratch(ctx context.Context) error {
	type variant struct {
		name string
		sql  string
		env  map[string]string
	}
	variants := []variant{
		{name: "current"},
		{name: "no-guard", sql: "DROP TRIGGER river_job_attempt_guard ON river_job; DROP TRIGGER river_job_attempt_start ON river_job"},
		{name: "metrics-off", env: map[string]string{"METRICS_ENABLED": "false"}},
	}
	n := b.opts.workN
	for round := range 5 {
		for i := range variants {
			v := variants[(i+round)%len(variants)]
			b.scratchSQL, b.scratchEnv = v.sql, v.env
			load, _ := os.ReadFile("/proc/loadavg")
			res, cpu, err := b.drainWithStreams(ctx, n, 0)
			if err != nil {
				return err
			}
			load2, _ := os.ReadFile("/proc/loadavg")
			b.logger.Info("scratch", slog.Int("round", round), slog.String("variant", v.name),
				slog.Float64("per_s", res.rate()), slog.String("load_before", strings.TrimSpace(string(load))),
				slog.String("load_after", strings.TrimSpace(string(load2))))
			b.report.info(row{figure: fmt.Sprintf("scratch round %d %s", round, v.name), value: res.String(), baseline: cpu.perTask(res.completed)})
		}
	}
	b.scratchSQL = ""
	return nil
}
