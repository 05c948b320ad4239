package conformance_test

import (
	"strings"
	"testing"
	"time"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
)

// longerTimeout changes a cluster without changing its endpoints.
func longerTimeout() xdstest.ClusterOption { return xdstest.WithConnectTimeout(7 * time.Second) }

// expectEqual reports, without stopping the test, a value that differs from want.
func expectEqual[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

// mustContain fails the test unless err's text contains part.
func mustContain(t *testing.T, err error, part string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), part) {
		t.Fatalf("want an error mentioning %q, got %v", part, err)
	}
}

func shortType(typeURL string) string { return protocol.Short(typeURL) }

func shortTypes(typeURLs []string) string {
	var out []string
	for _, u := range typeURLs {
		out = append(out, protocol.Short(u))
	}
	return join(out)
}
