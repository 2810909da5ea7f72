package main

import (
	"log"

	"github.com/snapfs/snapfs/snap"
)

// startSchedules runs the pool's snapshot schedules while the daemon
// serves it (snap.Scheduler: a catch-up pass at once, then each tier as
// it falls due) and returns the function that stops them. Nothing runs
// while no daemon has the pool open.
func startSchedules(e *engine) (stop func()) {
	s := snap.ManagerFor(e.st).StartScheduler(func(r snap.RunReport) {
		for _, t := range r.Taken {
			log.Printf("schedule: took %s", t)
		}
		for _, p := range r.Pruned {
			log.Printf("schedule: retention destroyed %s", p)
		}
		for _, err := range r.Errors {
			log.Printf("schedule: %v", err)
		}
	})
	return s.Stop
}
