package admin

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// modulePath is the module leanxds is built from: the binary's main module, or a
// dependency of a program that embeds it.
const modulePath = "github.com/leanxds/leanxds"

// unknown is what BuildInfo says of what the build does not record.
const unknown = "unknown"

// BuildInfo says which leanxds a binary holds: what `leanxds version` prints and
// the labels of the leanxds_build_info metric.
type BuildInfo struct {
	// Version is the leanxds module's version: a tag ("v0.3.0") or a
	// pseudo-version for a `go install ...@version` or a dependency, "(devel)"
	// for a build of a working copy that Go could not stamp.
	Version string
	// Commit is the VCS revision the binary was built from, with "+dirty" when
	// the working copy had uncommitted changes; "unknown" when the build does
	// not record it (a build from the module cache, -buildvcs=false, or an
	// embedding program: its revision is its own, not leanxds's).
	Commit string
	// GoVersion is the Go toolchain that built the binary ("go1.26.0").
	GoVersion string
}

// ReadBuildInfo returns the build information the Go toolchain stamped in the
// running binary (runtime/debug.ReadBuildInfo).
func ReadBuildInfo() BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return BuildInfo{Version: unknown, Commit: unknown, GoVersion: runtime.Version()}
	}
	return buildInfoOf(bi)
}

// buildInfoOf reads what a binary's build information says of leanxds.
func buildInfoOf(bi *debug.BuildInfo) BuildInfo {
	info := BuildInfo{Version: unknown, Commit: unknown, GoVersion: bi.GoVersion}
	if info.GoVersion == "" {
		info.GoVersion = runtime.Version()
	}
	if bi.Main.Path != modulePath {
		// Embedded: leanxds is a dependency, whose version the build records;
		// the VCS settings are those of the embedding program.
		for _, dep := range bi.Deps {
			if dep.Path != modulePath {
				continue
			}
			if dep.Replace != nil {
				dep = dep.Replace
			}
			info.Version = nonEmpty(dep.Version)
		}
		return info
	}
	info.Version = nonEmpty(bi.Main.Version)
	var revision string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if revision != "" {
		info.Commit = revision
		if modified {
			info.Commit += "+dirty"
		}
	}
	return info
}

// nonEmpty returns v, or "unknown" (a replacement by a directory has no version).
func nonEmpty(v string) string {
	if v == "" {
		return unknown
	}
	return v
}

// newBuildInfoGauge is leanxds_build_info: 1, labelled with the build, the
// usual way to put a version on a dashboard and to join it to other series.
func newBuildInfoGauge(info BuildInfo) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "leanxds_build_info",
		Help:        "Always 1, labelled with the leanxds version, the commit it was built from and the Go version that built it.",
		ConstLabels: prometheus.Labels{"version": info.Version, "commit": info.Commit, "go_version": info.GoVersion},
	})
	g.Set(1)
	return g
}
