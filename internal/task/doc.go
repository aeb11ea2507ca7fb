// Package task is Handoff's domain: accepting tasks, reading them, and
// cancelling or retrying them.
//
// A task is a row in the tasks table plus a River job with the same ID.
// Service.Create inserts the job with River's InsertTx, and a trigger on
// river_job (migrations/00010_task_insert_trigger.sql) writes the tasks row
// in that same INSERT statement: a task is accepted exactly when the
// statement commits, and any River job, however inserted, is a task. From
// then on River owns the job's state; a trigger on river_job
// (migrations/00009_tasks.sql) mirrors state, attempts, errors and the result
// into the tasks row inside River's own updates, so the tasks row is always
// current and outlives the job row, which River's cleaner deletes after its
// retention period.
package task
