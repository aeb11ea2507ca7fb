package riverseam

// Keys of river_job.metadata that Handoff writes. All start with handoff_;
// River merges metadata with the job's outcome and never reads these.
const (
	// MetadataKeyAttempt is the attempt whose outcome an update of the job
	// carries (Middleware, MarkAttempt), checked by migration 00011's
	// guard trigger. The trigger removes it when the next attempt starts.
	MetadataKeyAttempt = "handoff_attempt"

	// MetadataKeyIdempotencyKey and MetadataKeyRequestHash carry a task's
	// idempotency key and the hex SHA-256 of its request into the job's
	// INSERT, where migration 00010's insert trigger copies them to the
	// tasks row.
	MetadataKeyIdempotencyKey = "handoff_idempotency_key"
	MetadataKeyRequestHash    = "handoff_request_hash"

	// MetadataKeyTenant is the task's tenant (tasks.tenant; absent means
	// "default"), MetadataKeyCallbackURL its callback URL
	// (tasks.callback_url), MetadataKeyRunAt its run_at as the client sent
	// it, which the request hash covers. Migration 00012 reads them; its
	// BEFORE INSERT trigger writes MetadataKeyRequestHash from them and the
	// job's columns for every job with an idempotency key.
	MetadataKeyTenant      = "handoff_tenant"
	MetadataKeyCallbackURL = "handoff_callback_url"
	MetadataKeyRunAt       = "handoff_run_at"

	// MetadataKeyCallbackOf marks a completion callback: the http job that
	// migration 00012's tasks_callback trigger inserts when a task with a
	// callback_url finishes, with that task's id (jobs.HTTPWebhookID).
	// Neither the API nor handoff.enqueue lets a client set it.
	MetadataKeyCallbackOf = "handoff_callback_of"
)
