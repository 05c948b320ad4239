//go:build !unix

package etcdtest

import "testing"

// lock does nothing where there is no flock: tests that stop members may
// disturb others there.
func lock(t testing.TB, exclusive bool) {}
