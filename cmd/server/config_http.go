package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/handoff/handoff/internal/safehttp"
	"github.com/handoff/handoff/internal/webhook"
	"github.com/handoff/handoff/jobs"
)

// webhookSecret reads a whsec_ secret; unset is the zero Secret.
func (p *envParser) webhookSecret(name string) webhook.Secret {
	raw := p.getenv(name)
	if raw == "" {
		return webhook.Secret{}
	}
	secret, err := webhook.ParseSecret(raw)
	if err != nil {
		// The value itself is never repeated: it is a secret.
		p.errs = append(p.errs, fmt.Errorf("%s: %w", name, err))
	}
	return secret
}

// allowList reads HTTP_TASK_ALLOW.
func (p *envParser) allowList(name string) *safehttp.AllowList {
	list, err := safehttp.ParseAllowList(p.getenv(name))
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("%s: %w", name, err))
	}
	return list
}

// checkWebhookConfig reports a previous secret given without a current one.
func (p *envParser) checkWebhookConfig(cfg *config) {
	if cfg.WebhookSecret.IsZero() && !cfg.WebhookSecretPrevious.IsZero() && p.getenv("WEBHOOK_SECRET") == "" {
		p.errs = append(p.errs, errors.New("WEBHOOK_SECRET_PREVIOUS is set but WEBHOOK_SECRET is not: set the new secret in WEBHOOK_SECRET and keep the old one in WEBHOOK_SECRET_PREVIOUS while receivers switch"))
	}
}

// httpDeps builds the http kind's dependencies: the guarded transport with
// HTTP_TASK_ALLOW, the signer with WEBHOOK_SECRET (and, during a rotation,
// WEBHOOK_SECRET_PREVIOUS), and the pool for discards.
func httpDeps(logger *slog.Logger, cfg *config, db jobs.Beginner) (jobs.HTTPDeps, *http.Transport) {
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
