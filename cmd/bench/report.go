package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one line of the report table.
type row struct {
	figure   string
	value    string
	baseline string
	ratio    string
	target   string
	// verdict is "pass", "FAIL", "info" (no target) or "skipped".
	verdict string
	// note explains a partial or unusual measurement.
	note string
}

// report collects rows as phases finish, so that an error or interrupt
// halfway still prints what was measured.
type report struct {
	rows []row
}

func (r *report) add(rw row) { r.rows = append(r.rows, rw) }

// check adds a row whose pass/fail is ok.
func (r *report) check(rw row, ok bool) {
	rw.verdict = "FAIL"
	if ok {
		rw.verdict = "pass"
	}
	r.add(rw)
}

// info adds a row that has no target.
func (r *report) info(rw row) {
	rw.verdict = "info"
	if rw.target == "" {
		rw.target = "—"
	}
	r.add(rw)
}

func (r *report) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\tbaseline\tratio\ttarget\tresult")
	fmt.Fprintln(tw, "------\t-----\t--------\t-----\t------\t------")
	var notes []string
	for _, rw := range r.rows {
		verdict := rw.verdict
		if rw.note != "" {
			notes = append(notes, rw.note)
			verdict += fmt.Sprintf(" [%d]", len(notes))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", rw.figure, dash(rw.value), dash(rw.baseline), dash(rw.ratio), dash(rw.target), verdict)
	}
	_ = tw.Flush()
	for i, n := range notes {
		fmt.Fprintf(w, "[%d] %s\n", i+1, n)
	}
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// latencies summarises a sample of durations.
type latencies []time.Duration

// quantile returns the nearest-rank q-quantile (0 < q ≤ 1), or 0 for an
// empty sample.
func (l latencies) quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	rank := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func perSec(v float64) string {
	return fmt.Sprintf("%.0f/s", v)
}

func ratio(a, b float64) (string, float64) {
	if b <= 0 {
		return "", 0
	}
	return fmt.Sprintf("%.2f", a/b), a / b
}

// countLabel prints 10000 as 10k and 1000000 as 1M.
func countLabel(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	case n >= 1000:
		return fmt.Sprintf("%.1fk", float64(n)/1000)
	default:
		return fmt.Sprint(n)
	}
}

// phaseSet is the -only flag: which phases run.
type phaseSet map[string]bool

// phaseNames lists the phases of the default run, in the order they run.
func phaseNames() []string {
	return []string{"enqueue", "work", "latency", "list", "growth", "live"}
}

func parsePhases(only string) (phaseSet, error) {
	set := phaseSet{}
	if only == "" {
		for _, p := range phaseNames() {
			set[p] = true
		}
		return set, nil
	}
	for name := range strings.SplitSeq(only, ",") {
		name = strings.TrimSpace(name)
		switch {
		case slices.Contains(phaseNames(), name):
			set[name] = true
		default:
			return nil, fmt.Errorf("-only: unknown phase %q; phases: %s", name, strings.Join(phaseNames(), ", "))
		}
	}
	return set, nil
}
