package writer

import "time"

// episode rate-limits what the writer logs about a store write that keeps
// failing (a full disk, an I/O error), which it retries with a backoff of
// up to a second: the first failure of an episode is logged at once, then
// at most one "still failing" line per interval, and the first success
// after failures ends the episode with one line saying how long it lasted
// and how many retries it took. Logging the 1st and every 100th retry, as
// before, said nothing for 100 s at a time and never that it was over.
// Used by the store goroutine only.
type episode struct {
	every time.Duration // least time between two lines of one episode
	start time.Time     // first failure; zero when writes succeed
	last  time.Time     // last line logged
	fails uint64        // failures in this episode
}

// fail records a failure at now and says whether to log it, and whether it
// starts an episode.
func (e *episode) fail(now time.Time) (log, first bool) {
	e.fails++
	if e.start.IsZero() {
		e.start, e.last = now, now
		return true, true
	}
	if now.Sub(e.last) >= e.every {
		e.last = now
		return true, false
	}
	return false, false
}

// ok records a success at now; when it ends an episode it returns true,
// with the episode's length and number of failures. Cheap when there is no
// episode: it runs after every write.
func (e *episode) ok(now time.Time) (ended bool, lasted time.Duration, fails uint64) {
	if e.start.IsZero() {
		return false, 0, 0
	}
	lasted, fails = now.Sub(e.start), e.fails
	*e = episode{every: e.every}
	return true, lasted, fails
}

// failing is how long the current episode has lasted (0: none).
func (e *episode) failing(now time.Time) time.Duration {
	if e.start.IsZero() {
		return 0
	}
	return now.Sub(e.start)
}
