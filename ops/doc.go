// Package ops owns Conveyor's operational plumbing: what a failure is, how
// alike failures are grouped, how changes reach the live dashboard, and how
// the local AI services that the AI lanes depend on are checked, started and
// stopped.
//
// Classification, fingerprints, the broadcaster and the supervisor import no
// other Conveyor package. The parts that act on jobs and their records build
// on conveyor/queue, conveyor/lanes and conveyor/data (none of which imports
// ops): failure capture ([Capture], a lanes middleware feeding SQLite in
// batches), the issue tracker ([Tracker]), failure retries ([Retrier], with
// RetryFailedBackgroundJobsJob), the queue-health check ([QueueHealth],
// CheckQueueHealthJob) and the AI health state ([AIHealth]).
//
// # Failure classification
//
// [Classify] maps an error to a [Kind]: [KindAuthentication],
// [KindTransient] or [KindRuntime]. The kind steers the queue's retry:
// [Retryable] is false only for authentication failures, which are never
// retried automatically. The rules, in the order they are tried, are
// documented on [Classify]. Handlers that know better set the kind
// themselves with [Error] or any error with a FailureKind method. Panics
// recovered by the worker middleware are recorded as [KindRuntime].
//
// # Fingerprints
//
// [Fingerprint] groups alike failures (and queue-health and AI-outage
// reports) into one issue: it hashes the source, kind, class and the message
// after [NormalizeMessage] has replaced ids, numbers, hex, UUIDs, e-mail
// addresses, URL query strings and quoted values with placeholders.
//
// # Live updates
//
// A [Broadcaster] coalesces change notices. [Broadcaster.Publish] is an
// atomic add and load, and never blocks or allocates; each subscriber receives at most
// one [Notification] per interval carrying the set of topics that changed and
// how many publishes it stands for. A slow subscriber gets the merged latest
// state, never a backlog, and never holds up anyone else.
//
// # Local AI
//
// [LocalAIConfig] holds the local AI settings (from the config file or the
// environment, see [LocalAIConfigFromEnv]); [CheckLocalAI] checks the
// microservice and Ollama over HTTP. A [Supervisor] is the start-up
// guardrail ([Supervisor.Ensure]) and the start/stop control behind
// `conveyor ai …`. It records what it started in the data directory and
// stops only what that record proves Conveyor started: it never signals a
// process it did not start. [Supervisor.Release], serve's stop, narrows
// that to what the calling process itself started.
//
// # AI health
//
// An [AIHealth] holds the local AI services' latest health ([AIState]) for
// everything that depends on it: the gates of the AI lanes (held closed
// while the services are down, so AI jobs wait instead of failing),
// /readyz, `conveyor health` and the continuous-processing coordinator. It
// is fed by the scheduled check job ([AIHealthJob],
// CheckAiMicroserviceHealthJob), by [AIHealth.Watch] and by the start-up
// guardrail; it records each reported check in SQLite and keeps one
// AI-outage issue per failing service ([AIOutageFingerprint]), opened on
// failure and resolved when the service is healthy again.
package ops
