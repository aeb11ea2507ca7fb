package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/handoff/handoff/internal/config"
)

// printConfig is `handoff config`: the parsed configuration, secrets masked.
// A bad configuration is reported as serve would report it.
func printConfig(getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Parse(getenv)
	if err != nil {
		return err
	}
	return config.Print(stdout, getenv, cfg)
}

// healthcheckTimeout bounds `handoff healthcheck`, below the usual 5 s of a
// container health check's own timeout.
const healthcheckTimeout = 4 * time.Second

// healthcheckClient asks the server itself: no proxy from the environment
// (an image's HTTP_PROXY would answer for whatever address it is given),
// and no redirect followed (the server's /readyz never redirects, so a 200
// from elsewhere is not its readiness).
var healthcheckClient = &http.Client{
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// healthcheck is `handoff healthcheck`: nil when GET /readyz on HTTP_ADDR
// answers 200, for container health checks in images without a shell or
// curl. An unspecified listen host (":8080", "0.0.0.0:8080") is asked on
// loopback.
func healthcheck(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	// Only the address matters: an image's health check has the server's
	// environment, but a probe must not fail on a setting it does not use.
	addr := config.Defaults().HTTPAddr
	if v := getenv("HTTP_ADDR"); v != "" {
		addr = v
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR=%q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if ip != nil && ip.To4() == nil {
			host = "::1"
		} else {
			host = "127.0.0.1"
		}
	}
	url := "http://" + net.JoinHostPort(host, port) + "/readyz"

	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := healthcheckClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck %s: %s: %s", url, resp.Status, body)
	}
	if _, err := fmt.Fprintf(stdout, "ready: %s\n", url); err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	return nil
}
