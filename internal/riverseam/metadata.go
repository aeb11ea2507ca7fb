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
)
