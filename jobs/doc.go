// Package jobs is the seed's job catalog: the orchestrators that fan out
// across accounts in staggered batches, the per-account jobs they enqueue
// (continuous feed capture, follow-graph sync, story replies, engagement,
// profile scans, avatars, profile refreshes), post analysis through the
// local AI service, and the purge of expired media — and the boundary to
// the outside services those jobs drive.
//
// # The connector boundary
//
// Instagram (in the seed) and the local AI service are outside Conveyor.
// The account jobs reach the first through a Connector, defined here where
// it is consumed, with two implementations: Bridge, which posts each call
// ({class, args, context, attempt, job_id}) to the URL the operator
// configures and maps the answer's status to a failure kind, and the
// sandbox (package jobs/sandbox), deterministic from a seed, which the demo
// and the tests use. Without a configured connector every call fails with
// one permanent error naming the setting (Unconfigured). AnalyzePostJob
// calls the local AI service (LocalAI) at the URL the local-AI guardrails
// check. The contract's args and results are the types of contract.go;
// docs/jobs.md documents them.
//
// Everything on Conveyor's side of the boundary is real: cursors, pacing,
// fan-out, failure handling and storage.
package jobs
