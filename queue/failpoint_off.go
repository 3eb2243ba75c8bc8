//go:build !failpoints

package queue

// failpoint does nothing in the product's build; see failpoint.go.
func (s *Store) failpoint(string) {}

// failpointNoSync is false in the product's build; see failpoint.go.
func failpointNoSync() bool { return false }
