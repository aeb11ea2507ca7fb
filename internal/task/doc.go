// Package task is Handoff's domain: accepting tasks, reading them, and
// cancelling or retrying them.
//
// A task is a row in the tasks table plus a River job with the same ID, both
// written in one transaction by Service.Create: a task is accepted exactly
// when that transaction commits. From then on River owns the job's state; a
// trigger on river_job (see migrations/00009_tasks.sql) mirrors state,
// attempts, errors and the result into the tasks row inside River's own
// updates, so the tasks row is always current and outlives the job row, which
// River's cleaner deletes after its retention period.
package task
