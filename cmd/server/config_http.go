package main

import (
	"log/slog"
	"net/http"

	"github.com/handoff/handoff/internal/config"
	"github.com/handoff/handoff/internal/safehttp"
	"github.com/handoff/handoff/internal/webhook"
	"github.com/handoff/handoff/jobs"
)

// httpDeps builds the http kind's dependencies: the guarded transport with
// HTTP_TASK_ALLOW, the signer with WEBHOOK_SECRET (and, during a rotation,
// WEBHOOK_SECRET_PREVIOUS), and the pool for discards.
func httpDeps(logger *slog.Logger, cfg *config.Config, db jobs.Beginner) (jobs.HTTPDeps, *http.Transport) {
	transport := safehttp.NewTransport(&safehttp.Options{Allow: cfg.HTTPTaskAllow})
	signer := webhook.NewSigner(cfg.WebhookSecret, cfg.WebhookSecretPrevious)
	if signer == nil {
		logger.Warn("WEBHOOK_SECRET is not set: http tasks and callbacks are sent unsigned; receivers cannot tell them from forgeries (make one with: echo whsec_$(openssl rand -base64 32))")
	}
	if cfg.HTTPTaskAllow != nil {
		logger.Info("http tasks may reach these non-public targets", slog.String("http_task_allow", cfg.HTTPTaskAllow.String()))
	}
	return jobs.HTTPDeps{Transport: transport, Signer: signer, DB: db}, transport
}
