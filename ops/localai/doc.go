// Package localai owns the local AI services the AI lanes depend on (the
// microservice and the Ollama server behind it): their settings, their
// health checks, starting and stopping them, and holding the AI lanes
// closed while they are down.
//
// # Files
//
//   - config.go: [Config], read from the config file and the seed's
//     environment variables ([ConfigFromEnv]).
//   - check.go: [Check], one HTTP health check per service ([HealthResult]).
//   - supervisor.go: the [Supervisor]: [Supervisor.Ensure] (serve's
//     start-up guardrail), Start, Stop, Restart, Release and [Status] behind
//     `conveyor ai …`; errors.go holds its errors.
//   - process.go: where the start command is launched, waited on and
//     reaped, and where processes are stopped; record.go (the ownership
//     record), lock.go (the data directory's lock file), cmdlog.go (the
//     commands' log) and proc.go (reading /proc) serve it.
//   - health.go: [Health], the services' latest health for everything that
//     depends on it: the gates of the AI lanes, /readyz and `conveyor
//     health`. It is fed by the scheduled check job (CheckAiMicroserviceHealthJob),
//     by [Health.Watch] and by the start-up guardrail, records each check in
//     SQLite and keeps one AI-outage issue per failing service.
//
// # Promises
//
// The Supervisor records what it started in the data directory and stops
// only what that record proves Conveyor started: it never signals a process
// it did not start. [Supervisor.Release], serve's stop, narrows that to
// what the calling process itself started. While the services are down the
// AI lanes' gates stay closed, so AI jobs wait in their queues instead of
// failing.
package localai
