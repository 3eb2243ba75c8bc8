package data

import (
	"errors"
	"fmt"
	"io/fs"
)

// ErrNotFound is returned by the single-row getters and updaters (FailureByID,
// IssueByID, ResolveIssue, AccountByID, PipelineByID, StepTerminal, …) when
// the row they name does not exist.
var ErrNotFound = errors.New("data: not found")

// ErrInvalid is the sentinel every *FieldError and *FilterError unwraps to: the
// caller passed a value the store refuses (an unknown failure kind, an empty
// class, a filter on an unknown field). Nothing was written.
var ErrInvalid = errors.New("data: invalid input")

// ErrSchemaTooNew is returned by Open (wrapped in a *SchemaError) when the
// database records a migration this binary does not know: it was written by a
// newer Conveyor, and an older binary must not touch it.
var ErrSchemaTooNew = errors.New("data: database schema is newer than this binary")

// ErrNoReplica is returned by Restore when the replica holds no backup at all
// (an empty or never-written replica). Callers that restore on start-up treat
// it as "start with a fresh database".
var ErrNoReplica = errors.New("data: replica holds no backup")

// ErrUnsupportedReplica is returned (wrapped, with the scheme) when a replica
// URL names a backend this binary does not link, and by PutReplicaFile and
// GetReplicaFile for any replica that is not file://. It matches
// errors.ErrUnsupported.
var ErrUnsupportedReplica = fmt.Errorf("data: unsupported replica: %w", errors.ErrUnsupported)

// ErrConflict is returned (wrapped) by CreateAccount and UpdateAccount when
// another account has the username.
var ErrConflict = errors.New("data: conflicts with an existing row")

// ErrPartialSnapshot is returned by CompleteFollowSnapshot when the cursor's
// pass did not start from the start cursor: a partial pass must never clear
// relationship flags.
var ErrPartialSnapshot = errors.New("data: follow-graph pass did not start from the start cursor")

// FieldError reports an input value the store refuses. Field names the Go
// field (or column) and Reason says what is wrong. It unwraps to ErrInvalid.
type FieldError struct {
	Field  string
	Reason string
}

// Error names the field and the reason.
func (e *FieldError) Error() string { return "data: invalid " + e.Field + ": " + e.Reason }

// Unwrap returns ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// FilterError reports a filter the store refuses: an unknown field, an
// operator the field does not take, a value of the wrong type, a limit out of
// range. Param is the request parameter that carried it when the caller set
// Cond.Param or SortKey.Param (so an HTTP layer can answer 400 naming it), and
// otherwise the field name ("limit", "offset" and "q" for those). It unwraps
// to ErrInvalid.
type FilterError struct {
	Param  string
	Reason string
}

// Error names the parameter and the reason.
func (e *FilterError) Error() string {
	return fmt.Sprintf("data: invalid filter parameter %q: %s", e.Param, e.Reason)
}

// Unwrap returns ErrInvalid.
func (e *FilterError) Unwrap() error { return ErrInvalid }

// SchemaError is returned by Open when the database cannot be used with this
// binary's migrations. It unwraps to ErrSchemaTooNew when the database holds
// a migration version this binary does not know.
type SchemaError struct {
	Path    string // database file
	Version int    // the offending version recorded in schema_migrations
	Latest  int    // the newest version this binary knows
	Reason  string
	Err     error
}

// Error names the database, the version and what is wrong.
func (e *SchemaError) Error() string {
	return fmt.Sprintf("data: %s: schema version %d: %s (this binary knows up to %d)", e.Path, e.Version, e.Reason, e.Latest)
}

// Unwrap returns the underlying sentinel, ErrSchemaTooNew for a newer database.
func (e *SchemaError) Unwrap() error { return e.Err }

// TargetExistsError is returned by Restore when the output path, its -wal or
// -shm file, or its litestream meta directory already exists: a restore never
// overwrites anything. It unwraps to fs.ErrExist.
type TargetExistsError struct {
	Path string // the first path found to exist
}

// Error names the path in the way and what to do.
func (e *TargetExistsError) Error() string {
	return "data: restore target already exists: " + e.Path + " (delete the database, -wal, -shm and the meta directory first, or restore to a new path)"
}

// Unwrap returns fs.ErrExist.
func (e *TargetExistsError) Unwrap() error { return fs.ErrExist }
