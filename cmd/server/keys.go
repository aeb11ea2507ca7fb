package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/handoff/handoff/internal/auth"
	"github.com/handoff/handoff/internal/config"
)

const keysUsage = `usage:
  handoff keys create --tenant NAME [--name LABEL]   make a key; it is printed once, alone on the last line
  handoff keys list                                  every key: prefix, tenant, label, created, last used, revoked
  handoff keys revoke PREFIX                         refuse the key from now on (every server within 5s)`

// keys is `handoff keys create|list|revoke`: API keys, straight in Postgres
// (DATABASE_URL), so that an operator needs no key to make the first one.
func keys(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("keys needs a sub-command\n%s", keysUsage)
	}
	sub, args := args[0], args[1:]
	if sub == "help" || isHelpFlag(sub) || (sub != "create" && slices.ContainsFunc(args, isHelpFlag)) {
		_, err := fmt.Fprintln(stdout, keysUsage)
		return err
	}
	var run func(context.Context, *config.Config) error
	switch sub {
	case "create":
		fs := flag.NewFlagSet("keys create", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		tenant := fs.String("tenant", "", "tenant the key acts for")
		name := fs.String("name", "", "label, for people")
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				_, err := fmt.Fprintln(stdout, keysUsage)
				return err
			}
			return fmt.Errorf("keys create: %w\n%s", err, keysUsage)
		}
		if *tenant == "" || fs.NArg() > 0 {
			return fmt.Errorf("keys create takes --tenant NAME and optionally --name LABEL\n%s", keysUsage)
		}
		run = func(ctx context.Context, cfg *config.Config) error {
			return keyCreate(ctx, cfg, *tenant, *name, stdout)
		}
	case "list":
		if len(args) > 0 {
			return fmt.Errorf("keys list takes no arguments\n%s", keysUsage)
		}
		run = func(ctx context.Context, cfg *config.Config) error { return keyList(ctx, cfg, stdout) }
	case "revoke":
		if len(args) != 1 {
			return fmt.Errorf("keys revoke takes one PREFIX\n%s", keysUsage)
		}
		run = func(ctx context.Context, cfg *config.Config) error { return keyRevoke(ctx, cfg, args[0], stdout) }
	default:
		return fmt.Errorf("unknown keys sub-command %q\n%s", sub, keysUsage)
	}
	cfg, err := config.Parse(getenv)
	if err != nil {
		return err
	}
	return run(ctx, cfg)
}

func keyCreate(ctx context.Context, cfg *config.Config, tenant, name string, stdout io.Writer) error {
	pool, err := openPool(ctx, cfg, 0)
	if err != nil {
		return err
	}
	defer pool.Close()
	key, rec, err := auth.Create(ctx, pool, tenant, name)
	if err != nil {
		return fmt.Errorf("keys create: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "created API key %s for tenant %q; it is shown only now, store it in a secret manager:\n%s\n", rec.Prefix, rec.Tenant, key)
	if err != nil {
		return fmt.Errorf("keys create: %w", err)
	}
	return nil
}

func keyList(ctx context.Context, cfg *config.Config, stdout io.Writer) error {
	pool, err := openPool(ctx, cfg, 0)
	if err != nil {
		return err
	}
	defer pool.Close()
	list, err := auth.List(ctx, pool)
	if err != nil {
		return fmt.Errorf("keys list: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PREFIX\tTENANT\tNAME\tCREATED\tLAST USED\tREVOKED")
	for _, k := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.Prefix, k.Tenant, dash(k.Name), k.CreatedAt.UTC().Format(time.RFC3339), when(k.LastUsedAt), when(k.RevokedAt))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("keys list: %w", err)
	}
	return nil
}

func keyRevoke(ctx context.Context, cfg *config.Config, prefix string, stdout io.Writer) error {
	pool, err := openPool(ctx, cfg, 0)
	if err != nil {
		return err
	}
	defer pool.Close()
	rec, err := auth.Revoke(ctx, pool, prefix)
	if errors.Is(err, auth.ErrKeyNotFound) {
		return fmt.Errorf("keys revoke %s: %w (see `handoff keys list`)", prefix, err)
	}
	if err != nil {
		return fmt.Errorf("keys revoke: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "revoked API key %s of tenant %q at %s; servers refuse it within %s\n", rec.Prefix, rec.Tenant, rec.RevokedAt.UTC().Format(time.RFC3339), auth.KeyCacheTTL)
	if err != nil {
		return fmt.Errorf("keys revoke: %w", err)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
