// Package wait holds the context-aware pause shared by the session engine's
// retries and the sweeper's pauses between batches.
package wait
