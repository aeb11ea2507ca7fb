package metrics

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// poolCollector reports pgxpool's statistics at each scrape.
type poolCollector struct {
	pool  *pgxpool.Pool
	descs map[string]*prometheus.Desc
}

func newPoolCollector(pool *pgxpool.Pool) *poolCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "db_pool", name), help, nil, nil)
	}
	return &poolCollector{pool: pool, descs: map[string]*prometheus.Desc{
		"max":           desc("max_conns", "DB_MAX_CONNS: the most connections the pool opens."),
		"total":         desc("conns", "Connections open now."),
		"acquired":      desc("acquired_conns", "Connections in use now."),
		"idle":          desc("idle_conns", "Connections idle now."),
		"acquires":      desc("acquires_total", "Connections handed out since start."),
		"empty":         desc("empty_acquires_total", "Acquires that had to wait for a connection: the pool was exhausted (raise DB_MAX_CONNS or find the slow query)."),
		"wait":          desc("acquire_wait_seconds_total", "Time spent waiting for a connection."),
		"canceled":      desc("canceled_acquires_total", "Acquires cancelled by their context while waiting."),
		"new":           desc("new_conns_total", "Connections opened since start."),
		"lifetimeClose": desc("max_lifetime_destroys_total", "Connections closed for reaching their maximum lifetime."),
	}}
}

// Describe sends the descriptions of every pool series.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect reads the pool's statistics.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	gauge := func(key string, v float64) {
		ch <- prometheus.MustNewConstMetric(c.descs[key], prometheus.GaugeValue, v)
	}
	counter := func(key string, v float64) {
		ch <- prometheus.MustNewConstMetric(c.descs[key], prometheus.CounterValue, v)
	}
	gauge("max", float64(s.MaxConns()))
	gauge("total", float64(s.TotalConns()))
	gauge("acquired", float64(s.AcquiredConns()))
	gauge("idle", float64(s.IdleConns()))
	counter("acquires", float64(s.AcquireCount()))
	counter("empty", float64(s.EmptyAcquireCount()))
	counter("wait", s.AcquireDuration().Seconds())
	counter("canceled", float64(s.CanceledAcquireCount()))
	counter("new", float64(s.NewConnsCount()))
	counter("lifetimeClose", float64(s.MaxLifetimeDestroyCount()))
}
