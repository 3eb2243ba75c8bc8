// Package ui is Conveyor's HTTP surface: the JSON API for jobs, queues,
// failures, issues and the schedule, live events (server-sent), backups,
// liveness and readiness, the Prometheus metrics, and the operator's pages
// with their login, all registered in one route table.
//
// A Server (New) is an http.Handler built from one route table (Routes),
// which tests walk. Handlers are thin endpoints (endpointFunc): they decode a
// request struct (decodeBody), call the store, and return a response struct
// through one wrapper (endpoint, endpoint.go) whose errors are turned into
// statuses by one table (errorTable, errors.go). The single enqueue, the
// hot path, reads bodies of the plain shape in one pass first and answers
// without reflection (enqueuejson.go); anything else takes the general way.
//
// # Routes
//
//	GET  /healthz                      200 {"status":"ok"}; no authentication, no data
//	GET  /readyz                       200 or 503 {"ready","checks":[{"name","ok","detail"}]}
//	GET  /metrics                      Prometheus text format
//	POST /api/v1/jobs                  enqueue one → 201 {"id","state"}; 200 {"id","state","duplicate":true}
//	POST /api/v1/jobs/batch            enqueue many, all or nothing → 201 {"ids",["duplicates"]}
//	GET  /api/v1/jobs?state=&queue=&class=&cursor=&size=
//	                                   → 200 {"jobs","next","total"}
//	GET  /api/v1/jobs/{id}             → 200 the job, with errors and timeline
//	GET  /api/v1/jobs/{id}/records     → 200 {"outside_calls","account_actions"} (jobrecords.go)
//	POST /api/v1/jobs/{id}/retry       → 200 {"id","state":"ready"}; 409 with "reason" when the failure rules refuse
//	POST /api/v1/jobs/{id}/discard     → 200 {"id","discarded":true}
//	GET  /api/v1/queues                → 200 [{"name","lane","size","latency_ms","paused","counts"}]
//	POST /api/v1/queues/{name}/pause   → 200 the queue
//	POST /api/v1/queues/{name}/resume  → 200 the queue
//	POST /api/v1/queues/{name}/clear   → 200 {"name","cleared"}
//	GET  /api/v1/events                server-sent events: the broadcaster's topics (events.go)
//	GET  /api/v1/failures              Tabulator's remote parameters (tabulator.go) → {"last_page","total","data"} (failures.go)
//	GET  /api/v1/failures/{id}         → 200 the failure with its retry state
//	POST /api/v1/failures/{id}/retry   → 200 the retry; 409 {"error","field","reason"} when refused
//	POST /api/v1/failures/retry        everything matching a filter, in bounded batches (go on with after_id and until_id)
//	GET  /api/v1/issues                → 200 {"last_page","total","data"} (issues.go)
//	POST /api/v1/issues/{id}/resolve   → 200 the issue
//	POST /api/v1/backup                bring the replica and the queue snapshot up to date now (backup.go)
//	GET  /api/v1/accounts?cursor=&size=
//	                                   → 200 {"accounts":[…],"next"} (accounts.go)
//	POST /api/v1/accounts              → 201 the account; 409 when the username is taken
//	PATCH /api/v1/accounts/{id}        → 200 the account
//	GET  /api/v1/cron                  → 200 {"scheduler","entries"} (schedule.go)
//	POST /api/v1/cron/{name}/enqueue   → 201 {"id","state","entry"}
//	POST /api/v1/cron/{name}/enable    → 200 the entry
//	POST /api/v1/cron/{name}/disable   → 200 the entry
//	POST /api/v1/jobs/bulk             {"action":"retry|discard","state","queue"?,"class"?,"cursor"?,"limit"?}
//	                                   → 200 {"action","examined","done","refused","reasons","skipped","next","more"} (bulk.go)
//	GET  /api/v1/jobs/count?state=&queue=&class=
//	                                   → 200 {"count","exact"}: what a bulk action will look at
//	GET  /api/v1/dashboard?panels=     → 200 the DashboardSnapshot, or the named panels of it (dashboard.go)
//	GET  /api/v1/lanes                 → 200 {"running","quiet","lanes":[…]}
//	POST /api/v1/lanes/quiet           every lane stops claiming; → 200 the lanes
//	POST /api/v1/lanes/resume          the lanes claim again; → 200 the lanes
//
// The pages (pages.go; unauthenticated visitors are sent to the login):
//
//	GET  /                             → 303 to the dashboard
//	GET  /admin/login, POST /admin/login, POST /admin/logout (login.go; no authentication for the first two)
//	GET  /admin/background_jobs        the dashboard (page_dashboard.go)
//	GET  /admin/background_jobs/failures
//	GET  /admin/jobs, /admin/jobs/{id}
//	GET  /admin/accounts
//	GET  /static/*file                 the embedded stylesheet and scripts (no authentication: no data)
//
// Each page takes ?panel=name and answers that panel alone, as an HTML
// fragment of the same template: the page's script (web/static/live.js)
// re-fetches the panels an event of GET /api/v1/events names, and every
// panel when the stream (re)opens.
//
// httprouter v1.3.0 cannot hold /api/v1/jobs/batch beside /api/v1/jobs/:id/…
// in one method's tree, so POST /api/v1/jobs/:id is registered as a switch:
// id "batch" is the batch route, any other id is 404. The table still lists
// the contract's paths.
//
// # Enqueue
//
// Body: {"class","queue"?,"args"?,"run_at"?,"in_seconds"?,"unique_key"?,
// "max_attempts"?,"context"?}. The class must be registered; the queue
// defaults to the class's and must be served by a lane of the topology, so a
// typo never becomes a job no lane runs. run_at is RFC 3339 (1970 to before
// 2200); in_seconds is a non-negative number of seconds from now, fractions
// allowed; giving both is an error. max_attempts is 1..1000 and defaults to
// the class's MaxAttempts, else the store's. context is an object of strings.
// args must be what the class declares (lanes.Class.Args): an unknown arg, a
// value of the wrong type, a missing required arg or a value out of range is
// a 422 whose field is "args.<name>" and whose message names the class, so a
// job that could never run is never created. The registry's NewJob is the
// one place these checks and the class's defaults live; the schedule, the
// fan-outs and the failure retrier use it too.
// When unique_key is held by an unfinished job nothing is created and the
// answer is 200 with "duplicate":true and the holder's id and state. A batch
// ({"jobs":[…]}, at most MaxBatchJobs) is decoded and checked whole before the
// store's all-or-nothing EnqueueMany; its answer lists one id per job, and
// "duplicates" the indexes whose key was held. It is 201 when it created
// anything, 200 when every job was a duplicate.
//
// # Jobs
//
// A job is {"id","class","queue","lane","state","attempt","max_attempts",
// "args","run_at","created_at","started_at","finished_at","lease_until",
// "stuck","unique_key","context","orphans","errors":[{"attempt","class","message",
// "backtrace","at"}],"timeline":[{"at","event","attempt","detail"}]}. Times
// are RFC 3339 in UTC with milliseconds, and null when they have not happened;
// lease_until is when a running attempt's time (its class's timeout) is up, and
// stuck is true while it runs past it (a handler that ignores its context);
// args is the job's own JSON (null when none); unique_key is null when none;
// context is always an object, errors always an array. The timeline's events
// are enqueued, scheduled, ready, started, failed, retry, done and dead (see
// jobView). Lists carry the same object without timeline and backtraces.
//
// Lists are cursor-paginated: state is required; size is 1..1000 (default 50);
// next is the cursor of the following page, null on the last; page is accepted
// only as 1. total counts the state (in the queue, when filtered) from the
// store's in-memory counters, and is null with a class filter.
//
// # Accounts
//
// An account is {"id","username","enabled","continuous_processing",
// "story_auto_reply","feed_auto_engagement","profile_scan",
// "follow_graph_sync","avatar_sync","profile_refresh","next_feed_sync_at",
// "last_feed_capture_at","last_sync_at","last_sync_result","created_at",
// "updated_at"}: one boolean switch per orchestrator of the job catalog
// (an orchestrator fans out only to enabled accounts whose switch for it is
// on) and the continuous-processing state (times RFC 3339 UTC, null when
// never). The /admin/accounts page is built on exactly this shape. POST
// takes {"username"} plus any of "enabled" (default true) and the switches
// (default off); PATCH takes any of the same and leaves what it omits as it
// is. The list is by ascending id, size 1..1000 (default 50), next the
// cursor of the following page (null on the last). A change publishes
// profiles_table_changed on the live stream.
//
// # Errors
//
// Every error is JSON {"error","field"}; field names the offending part of the
// request as the client spelled it ("class", "jobs[3].class", "state",
// "cursor", "id", "Authorization", "Host") and is "" when no one field is at fault.
// Nothing is half-written: every refused request leaves the store as it was.
//
//	400  malformed JSON, wrong JSON type, unknown field, trailing data, a
//	     non-numeric job id, a bad cursor
//	401  no or wrong credentials (with WWW-Authenticate: Bearer)
//	403  a Host header not in Config.AllowedHosts; a change made with the
//	     session cookie without its CSRF token (field X-CSRF-Token) or from
//	     another origin (field Origin)
//	404  unknown job, unknown queue (neither in the topology nor the store),
//	     unknown path
//	405  a method the path does not take (with Allow)
//	409  retry or discard of a running job; retry of a ready or done job; an
//	     account username that is taken; a job retry the failure rules refuse
//	     ({"error","field","reason"}: the reasons of POST /api/v1/failures/{id}/retry)
//	413  a body over Config.MaxBodyBytes (one job) or MaxBatchBytes (batch)
//	422  validation: missing or unknown class, args the class does not take
//	     (field args.<name>), a queue no lane serves, a bad
//	     or out-of-range time, run_at with in_seconds, max_attempts out of
//	     range, the store's own checks (args size, unique_key, context), a
//	     missing or unknown state, a bad size, page other than 1, an empty or
//	     too large batch
//	429  too many failed logins from one address (with Retry-After)
//	500  anything else: a generic message; the detail is logged only
//	503  the store is closed (shutting down), or refuses writes after its
//	     file could not be written (until the server restarts)
//	507  the queue's disk is full: nothing was written (retry once space
//	     is freed)
//
// # Security
//
// The server is meant to listen on 127.0.0.1 (the command's default). Every
// request's Host header is checked first against Config.AllowedHosts
// (DNS-rebinding protection; `serve` derives the list with HostsFor from the
// listener's actual address and appends names given by the operator). Then
// every route but /healthz, the login page and form, and the static files
// needs a caller: Authorization: Bearer <token> (compared in constant time),
// or a browser session. The login (POST /admin/login) takes the token or the
// configured password (an argon2id hash, password.go), limited to a few
// failures per client address, and gives a stateless session cookie
// (session.go): HttpOnly, SameSite=Strict, Secure over TLS, with an expiry,
// HMAC-signed under Config.SessionKey; logout revokes it for good. A request
// made with the cookie that changes anything — pages and API alike — must
// carry the session's CSRF token (X-CSRF-Token, or csrf_token in a form) and
// an Origin of this server, and is refused with 403 otherwise.
//
// Every response carries X-Content-Type-Options: nosniff, Cache-Control:
// no-store, X-Frame-Options: DENY and a Content-Security-Policy: the API's is
// default-src 'none'; the pages' allows scripts, styles and requests to this
// server only — no inline script, no eval — and frame-ancestors 'none'. Job
// data is escaped everywhere: pages are html/template, scripts put text in
// with textContent, and JSON is encoded with <, > and & escaped. Values of
// args and context keys matching Config.Redact are masked in the API and on
// the pages (redact.go).
package ui
