package ui

// FailuresConfig is the failure pipeline's part of Config.
type FailuresConfig struct{}

// failureRoutes are the failures and issues endpoints.
func (s *Server) failureRoutes() []Route { return nil }
