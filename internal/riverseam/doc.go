// Package riverseam is the one home of everything in Handoff that relies on
// River's internals rather than its API: the one-statement accept
// (RunOwnStatement), the worker middleware that completes jobs at once and
// marks every outcome with its attempt (Middleware), a worker's discard of
// its own job (JobDiscardTx), the metadata keys
// Handoff writes (MetadataKey...), and the Go projection of a job into its
// tasks row (TaskRow). The SQL half of the seam, the triggers on river_job,
// is in migrations/ (00009, 00010, 00011, 00012, 00017, 00020). Since 00017 the
// record is the table task_records, which the triggers write at every
// change but a job's fetch, and tasks is the view that overlays a running
// job's state from river_job; it relies on assumption 8 (a fetch is the one
// transition to 'running', from 'available'). The conformance suite in this
// package's tests drives every River transition and checks that the tasks
// row agrees with river_job; it is the first thing to run after a River
// upgrade (CHANGELOG.md, "River upgrade checklist").
//
// Imports point one way: internal/task and cmd/server import riverseam;
// riverseam imports only River, pgx and internal/store.
//
// # Assumptions, with the River v0.51.2 file behind each
//
// Paths are relative to the module cache: river@v0.51.2 is
// github.com/riverqueue/river, riverpgxv5@v0.51.2 its driver.
//
//  1. InsertTx sends one INSERT ... RETURNING (JobInsertFastMany, a Query),
//     then at most its version probe and insert NOTIFY, both Exec or
//     QueryRow, and nothing else; it never calls Begin (no savepoints since
//     v0.49). RunOwnStatement refuses anything more (ErrSecondStatement).
//     river@v0.51.2/client.go (insertManyShared, maybeNotifyInsertForQueues);
//     riverpgxv5@v0.51.2/river_pgx_v5_driver.go (JobInsertFastMany,
//     NotifyMany, getPostgresCapabilities); the statement names in
//     riverpgxv5@v0.51.2/internal/dbsqlc/pg_misc.sql.
//  2. Every job state change is an UPDATE of river_job (never a DELETE and
//     INSERT), so AFTER UPDATE and BEFORE UPDATE triggers see them all;
//     River's cleaner deletes only finalized jobs. riverpgxv5@v0.51.2/
//     internal/dbsqlc/river_job.sql (JobGetAvailable, JobSetStateIfRunningMany,
//     JobRescueMany, JobRetry, JobCancel, JobUpdate, JobSchedule,
//     JobDeleteBefore).
//  3. A worker's outcome is written by JobSetStateIfRunningMany, which
//     matches a job by id and state = 'running' only and merges the
//     metadata updates of the work context into the row, running or not;
//     JobCompleteTx uses the same query with the same context map.
//     river@v0.51.2/internal/jobexecutor/job_executor.go (execute,
//     reportResult, reportError), river@v0.51.2/job_complete_tx.go,
//     riverpgxv5@v0.51.2/internal/dbsqlc/river_job.sql.
//  4. river.MetadataSet from a worker middleware lands in that map for every
//     outcome: completed, failed, snoozed, cancelled, discarded,
//     interrupted by shutdown. Only a job whose row cannot be decoded or
//     whose kind has no worker skips the middleware (its outcome carries no
//     marker and is let through). river@v0.51.2/metadata.go,
//     river@v0.51.2/internal/jobexecutor/job_executor.go.
//  5. When the guard makes a row's update a no-op, JobSetStateIfRunningMany
//     still returns that row, as it stands (the NOT EXISTS branch), and the
//     completer skips a row that is not finished: no event, no error, no
//     retry. river@v0.51.2/internal/jobcompleter/job_completer.go
//     (completerJobUpdatedFromStateAndReason, handleBatch, withRetries).
//  6. The batch completer retries a failed batch three times with 1, 2 and
//     4 s sleeps (up to ~37 s with timeouts), which is why a completion can
//     land long after the task showed completed. river@v0.51.2/internal/
//     jobcompleter/job_completer.go (numRetries, withRetries).
//  7. A job's output is metadata.output (rivertype.MetadataKeyOutput),
//     written by RecordOutput with the outcome, or by JobUpdate with Output
//     on its own. river@v0.51.2/recorded_output.go, river@v0.51.2/client.go
//     (jobUpdate), rivertype@v0.51.2/river_type.go.
//  8. A fetch sets state 'running' and attempt + 1 and leaves metadata
//     alone; JobRetry keeps attempt and removes only cancel_attempted_at;
//     snooze and shutdown interruption set attempt back by one.
//     riverpgxv5@v0.51.2/internal/dbsqlc/river_job.sql (JobGetAvailable,
//     JobRetry), river@v0.51.2/internal/jobexecutor/job_executor.go.
//  9. River's AttemptError encodes as {"at", "attempt", "error", "trace"},
//     which the sync trigger copies into tasks.errors and the API reads.
//     rivertype@v0.51.2/river_type.go.
//  10. handoff.insert_job (migration 00012) writes the row InsertTx writes
//     (columns and defaults of JobInsertFastMany: tags '{}', state
//     'available' or 'scheduled', scheduled_at now() when not given) and
//     sends River's insert NOTIFY for an available job: topic
//     <current_schema>.river_insert, payload {"queue": name}.
//     riverpgxv5@v0.51.2/internal/dbsqlc/river_job.sql (JobInsertFastMany),
//     riverpgxv5@v0.51.2/internal/dbsqlc/pg_misc.sql (PGNotifyMany),
//     river@v0.51.2/client.go (insertManyShared,
//     maybeNotifyInsertForQueues), river@v0.51.2/internal/notifier/notifier.go
//     (NotificationTopicInsert).
//  11. JobDiscardTx: the driver's JobSetStateIfRunningMany with the params
//     of riverdriver.JobSetStateDiscarded discards a running job as River's
//     executor does after a last failed attempt (errors appended, finalized
//     at, metadata merged), and changes no state of a job that is not
//     running; a worker that then returns river.JobCancel makes River send
//     the same query for the cancel, which finds the job discarded and
//     changes nothing. riverdriver@v0.51.2/river_driver_interface.go
//     (JobSetStateDiscarded), river@v0.51.2/internal/jobexecutor/
//     job_executor.go (reportError), riverpgxv5@v0.51.2/internal/dbsqlc/
//     river_job.sql.
package riverseam
