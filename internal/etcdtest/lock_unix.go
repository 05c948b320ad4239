//go:build unix

package etcdtest

import (
	"os"
	"syscall"
	"testing"
)

// lock holds the cluster, exclusive or shared, until t ends.
func lock(t testing.TB, exclusive bool) {
	t.Helper()
	f, err := os.OpenFile(lockPath(), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("etcd test lock: %v", err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		t.Fatalf("etcd test lock: %v", err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}
