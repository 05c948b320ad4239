package fleet

import "time"

// rateBound is a token bucket bounding the keys a publisher writes per
// second: it fills at rate tokens a second, up to burst, and each key put or
// deleted takes one.
type rateBound struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

// newRateBound returns a full bucket of rate keys a second holding at most
// burst.
func newRateBound(rate float64, burst float64, now time.Time) *rateBound {
	burst = max(burst, 1)
	return &rateBound{rate: rate, burst: burst, tokens: burst, last: now}
}

// take returns how many of want keys may be written now, and counts them.
func (b *rateBound) take(now time.Time, want int) int {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
	n := min(want, int(b.tokens))
	b.tokens -= float64(n)
	return n
}
