package admin

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/store"
)

// The build information names leanxds's version and commit whether leanxds is
// the binary's main module or a dependency of a program embedding it.
func TestBuildInfoOf(t *testing.T) {
	vcs := []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.modified", Value: "false"}}
	dirty := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.modified", Value: "true"}}
	for _, tc := range []struct {
		name string
		bi   debug.BuildInfo
		want BuildInfo
	}{{
		name: "go install @version: no VCS settings",
		bi:   debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: modulePath, Version: "v0.3.0"}},
		want: BuildInfo{Version: "v0.3.0", Commit: "unknown", GoVersion: "go1.26.1"},
	}, {
		name: "a clean working copy",
		bi:   debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: modulePath, Version: "v0.3.1-0.20261207191500-0123456789ab"}, Settings: vcs},
		want: BuildInfo{Version: "v0.3.1-0.20261207191500-0123456789ab", Commit: "0123456789abcdef0123456789abcdef01234567", GoVersion: "go1.26.1"},
	}, {
		name: "a working copy with changes",
		bi:   debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: modulePath, Version: "(devel)"}, Settings: dirty},
		want: BuildInfo{Version: "(devel)", Commit: "0123456789abcdef0123456789abcdef01234567+dirty", GoVersion: "go1.26.1"},
	}, {
		name: "embedded: the dependency's version, not the program's commit",
		bi: debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "example.com/edge", Version: "v1.0.0"}, Settings: dirty,
			Deps: []*debug.Module{{Path: "google.golang.org/grpc", Version: "v1.85.0"}, {Path: modulePath, Version: "v0.4.0"}}},
		want: BuildInfo{Version: "v0.4.0", Commit: "unknown", GoVersion: "go1.26.1"},
	}, {
		name: "embedded and replaced by a fork",
		bi: debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "example.com/edge"},
			Deps: []*debug.Module{{Path: modulePath, Version: "v0.4.0", Replace: &debug.Module{Path: "example.com/fork", Version: "v0.4.1"}}}},
		want: BuildInfo{Version: "v0.4.1", Commit: "unknown", GoVersion: "go1.26.1"},
	}, {
		name: "embedded and replaced by a directory",
		bi: debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "example.com/edge"},
			Deps: []*debug.Module{{Path: modulePath, Version: "v0.4.0", Replace: &debug.Module{Path: "../leanxds"}}}},
		want: BuildInfo{Version: "unknown", Commit: "unknown", GoVersion: "go1.26.1"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, buildInfoOf(&tc.bi))
		})
	}
}

// leanxds_build_info is 1, labelled with what ReadBuildInfo reads.
func TestBuildInfoMetric(t *testing.T) {
	info := ReadBuildInfo()
	assert.Equal(t, runtime.Version(), info.GoVersion)
	assert.NotEmpty(t, info.Version)
	assert.NotEmpty(t, info.Commit)

	m := NewMetrics(store.New())
	families, err := m.reg.Gather()
	require.NoError(t, err)
	var labels map[string]string
	var value float64
	for _, f := range families {
		if f.GetName() != "leanxds_build_info" {
			continue
		}
		require.Len(t, f.GetMetric(), 1)
		labels = map[string]string{}
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		value = f.GetMetric()[0].GetGauge().GetValue()
	}
	assert.Equal(t, map[string]string{"version": info.Version, "commit": info.Commit, "go_version": info.GoVersion}, labels)
	assert.Equal(t, 1.0, value)

	other := newBuildInfoGauge(BuildInfo{Version: "v9.9.9", Commit: "abc+dirty", GoVersion: "go1.99"})
	assert.NoError(t, testutil.CollectAndCompare(other, strings.NewReader(`
# HELP leanxds_build_info Always 1, labelled with the leanxds version, the commit it was built from and the Go version that built it.
# TYPE leanxds_build_info gauge
leanxds_build_info{commit="abc+dirty",go_version="go1.99",version="v9.9.9"} 1
`)))
}
