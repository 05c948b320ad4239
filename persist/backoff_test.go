package persist

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The wait before a retry doubles from MinBackoff up to MaxBackoff, less a
// random fifth at most.
func TestBackoffIsCappedExponential(t *testing.T) {
	p := &Persister{opts: Options{MinBackoff: time.Second, MaxBackoff: 30 * time.Second}}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 5: 16 * time.Second, 6: 30 * time.Second, 40: 30 * time.Second, 1000: 30 * time.Second} {
		for range 20 {
			got := p.backoff(n)
			assert.LessOrEqual(t, got, want, "retry %d", n)
			assert.GreaterOrEqual(t, got, want*4/5, "retry %d", n)
		}
	}
}
