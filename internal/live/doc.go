// Package live carries task changes to the people and programs watching
// them: a Hub that fans Postgres notifications from one listener connection
// per process out to event streams, the per-task read tokens that let a
// browser follow one task without an API key, and the Postgres writer of
// workers' progress reports. docs/live.md describes the design.
package live
