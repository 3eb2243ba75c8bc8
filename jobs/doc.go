// Package jobs is the seed's job catalog: the orchestrators that fan out
// across accounts in staggered batches, the per-account jobs they enqueue
// (continuous feed capture, follow-graph sync, story replies, engagement,
// profile scans, avatars, profile refreshes), the post-analysis pipeline
// through the local AI service, and the purge of expired media — and the
// boundary to the outside services those jobs drive.
//
// # The post-analysis pipeline
//
// AnalyzePostJob (queue ai) fans each captured post out to one job per
// capability on the AI capsules' queues (Steps): metadata, visual
// analysis, face detection, OCR of images and frames with text, video
// processing and frame generation, whose frames go to visual analysis.
// Each step stores its result per post, capability and frame
// (data.PostAnalysis), is idempotent by its unique key and its stored
// result, and runs only while the local-AI health keeps the AI lanes open.
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
