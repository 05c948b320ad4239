package conv

import "time"

// Option tunes a stream opened by ADS, Typed, DeltaADS or DeltaTyped.
type Option func(*options)

// options holds the waits of one stream.
type options struct {
	// timeout bounds how long ExpectResponse and ExpectError wait.
	timeout time.Duration
	// quiet is how long ExpectNothing listens for a response that should not come.
	quiet time.Duration
}

func newOptions(opts []Option) options {
	o := options{timeout: 5 * time.Second, quiet: 300 * time.Millisecond}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithTimeout sets how long ExpectResponse and ExpectError wait before failing the
// test (default 5s).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithQuiet sets how long ExpectNothing listens before it is satisfied (default
// 300ms). A shorter window makes tests faster and the check weaker.
func WithQuiet(d time.Duration) Option { return func(o *options) { o.quiet = d } }
