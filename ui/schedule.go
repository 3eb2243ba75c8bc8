package ui

// ScheduleConfig is the schedule's part of Config.
type ScheduleConfig struct{}

// scheduleRoutes are the schedule endpoints.
func (s *Server) scheduleRoutes() []Route { return nil }
