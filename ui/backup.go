package ui

import (
	"context"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"
)

// BackupReport is what POST /api/v1/backup did.
type BackupReport struct {
	// ReplicaSyncedAt is when the database's replica caught up with every
	// write made before the request.
	ReplicaSyncedAt time.Time `json:"replica_synced_at"`
	// QueueSnapshotAt is when the queue snapshot was written (zero when the
	// replica holds no queue snapshots, e.g. an s3 replica).
	QueueSnapshotAt    *time.Time `json:"queue_snapshot_at"`
	QueueSnapshotBytes int64      `json:"queue_snapshot_bytes"`
}

// backupNow serves POST /api/v1/backup: bring the replica up to date now and
// write a queue snapshot beside it, then answer what was done — before
// maintenance, or before a machine is retired. Without replication: 503.
func (s *Server) backupNow(r *http.Request, _ httprouter.Params) (int, any, error) {
	if s.cfg.Backup == nil {
		return 0, nil, &fieldError{kind: errUnavailable, Msg: "replication is off on this server: there is nothing to back up to"}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	rep, err := s.cfg.Backup(ctx)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rep, nil
}
