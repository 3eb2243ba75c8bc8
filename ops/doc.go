// Package ops owns Conveyor's operational plumbing: what a failure is, how
// alike failures are grouped, how changes reach the live dashboard, and how
// the local AI services that the AI lanes depend on are checked, started and
// stopped.
//
// This package does not import other Conveyor packages for these parts; the
// queue, the lanes, the SQLite repositories and the command line build on it.
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
// process it did not start.
package ops
