//go:build !failpoints

package queue

// failpoint does nothing in the product's build; see failpoint.go.
func (s *Store) failpoint(string) {}
