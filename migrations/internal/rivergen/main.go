// Command rivergen writes River's migrations, from the River version in
// go.mod, into the current directory as goose files. It runs from migrations/
// through `go generate ./migrations/...`; its output is committed.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/handoff/handoff/migrations/internal/riversql"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "rivergen:", err)
		os.Exit(1)
	}
}

func run() error {
	version, err := driverVersion()
	if err != nil {
		return err
	}
	files, err := riversql.Render(version)
	if err != nil {
		return fmt.Errorf("render river migrations: %w", err)
	}

	// A River upgrade can rename a version's file; the old one must not linger
	// next to the new one with the same goose version.
	want := make(map[string]bool, len(files))
	for _, file := range files {
		want[file.Name] = true
	}
	entries, err := os.ReadDir(".")
	if err != nil {
		return fmt.Errorf("read migrations directory: %w", err)
	}
	for _, entry := range entries {
		if riversql.IsGenerated(entry.Name()) && !want[entry.Name()] {
			if err := os.Remove(entry.Name()); err != nil {
				return fmt.Errorf("remove stale migration: %w", err)
			}
		}
	}

	for _, file := range files {
		if err := os.WriteFile(file.Name, file.Content, 0o644); err != nil { //nolint:gosec // Committed source, readable like any other.
			return fmt.Errorf("write migration: %w", err)
		}
	}
	return nil
}

// driverVersion reads the River version linked into this binary, which is the
// one go.mod selects, so headers cannot disagree with the SQL they carry.
func driverVersion() (string, error) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "", errors.New("read build info: not available")
	}
	for _, dep := range info.Deps {
		if dep.Path == riversql.DriverModule {
			return dep.Version, nil
		}
	}
	return "", fmt.Errorf("read build info: %s not linked", riversql.DriverModule)
}
