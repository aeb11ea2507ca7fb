package migrations_test

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/handoff/handoff/migrations"
)

// ExampleNewProvider migrates the database the way cmd/server does on start-up
// when several replicas may do so at once. It needs a database, so it is
// compiled but not run.
func ExampleNewProvider() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	provider, err := migrations.NewProvider(stdlib.OpenDBFromPool(pool), &migrations.ProviderOpts{Lock: true})
	if err != nil {
		panic(err)
	}
	defer provider.Close()

	results, err := provider.Up(ctx)
	if err != nil {
		panic(err)
	}
	for _, result := range results {
		fmt.Println("applied", result.Source.Path)
	}

	current, err := provider.GetDBVersion(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("ready:", current >= migrations.LatestVersion())
}
