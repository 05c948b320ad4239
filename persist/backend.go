package persist

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Backend keeps one snapshot at one location. Implementations are safe for
// concurrent use, though the Persister calls one method at a time.
type Backend interface {
	// Read returns the current snapshot. When there is none, the error wraps
	// ErrNotFound. The slice is the caller's: the backend keeps no reference
	// to it and never writes to it again (restore reads names in place from
	// it while it commits).
	Read(ctx context.Context) ([]byte, error)
	// Write replaces the current snapshot with data, whole or not at all. An
	// error wrapping ErrConflict means another writer replaced the snapshot since
	// this backend last read or wrote it, and nothing was written: Read, decide,
	// then Write again.
	Write(ctx context.Context, data []byte) error
	// SetAside keeps the current snapshot under the name <location>.<suffix>, so
	// a snapshot that was refused is never lost, and returns where it went. The
	// file backend renames it; the S3 backend copies it and leaves the original
	// for the next Write to replace.
	SetAside(ctx context.Context, suffix string) (string, error)
	// String names the location for logs and status pages: file:///path,
	// s3://bucket/key.
	String() string
}

// History is implemented by a backend that keeps the snapshots it replaced, as
// the file backend does (<name>.1, the newest, to <name>.N). When the current
// snapshot is refused, Restore restores the newest of them that passes its
// checks, so that one damaged file does not leave a server without its config.
type History interface {
	// Kept is how many previous snapshots the backend keeps at most.
	Kept() int
	// Previous returns the n-th previous snapshot (1: the newest) and its
	// location, for logs; the error wraps ErrNotFound when there is none.
	Previous(ctx context.Context, n int) (data []byte, location string, err error)
}

var (
	// ErrNotFound is wrapped by Read when the location holds no snapshot.
	ErrNotFound = errors.New("no snapshot")
	// ErrConflict is wrapped by Write when another writer replaced the snapshot
	// since this backend last read or wrote it.
	ErrConflict = errors.New("the snapshot was replaced by another writer")
)

// DefaultKeep is how many previous snapshots the file backend keeps.
const DefaultKeep = 3

// BackendOptions tune Open.
type BackendOptions struct {
	// Keep is how many previous snapshots the file backend keeps beside the
	// current one, as <name>.1 (the newest) to <name>.N, for rolling back by hand.
	// 0 means DefaultKeep; a negative value keeps none. A file URL's ?keep=N
	// query overrides it.
	Keep int
	// S3 are applied to the S3 client after the URL's settings: a custom HTTP
	// client, retry policy, credentials provider.
	S3 []func(*s3.Options)
}

// Open returns the backend a snapshot URL names:
//
//	file:///var/lib/leanxds/snapshot.bin[?keep=3]
//	/var/lib/leanxds/snapshot.bin (a plain path is a file location)
//	s3://bucket/key[?region=eu-west-1][&endpoint=http://127.0.0.1:7070][&path_style=true][&profile=name]
//
// A file location's directory must exist and be writable: Open checks by
// creating and removing a file there, so a misconfigured path fails at start,
// not at the first write. An S3 location uses the standard AWS credential chain
// (environment, shared config and credentials files, web identity, container and
// instance roles), or the named profile of the shared config; endpoint points it
// at an S3-compatible store and turns on path-style addressing unless
// path_style=false. Open does not contact S3.
func Open(ctx context.Context, rawURL string, opts BackendOptions) (Backend, error) {
	if rawURL == "" {
		return nil, errors.New("snapshot location: empty URL")
	}
	if !strings.Contains(rawURL, "://") && !strings.HasPrefix(rawURL, "file:") {
		return openFile(rawURL, opts.Keep)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("snapshot location %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("snapshot location %q: a file URL names a local path: file:///path (three slashes)", rawURL)
		}
		if u.Path == "" {
			return nil, fmt.Errorf("snapshot location %q: no path", rawURL)
		}
		keep := opts.Keep
		q := u.Query()
		if k := q.Get("keep"); k != "" {
			n, err := strconv.Atoi(k)
			if err != nil {
				return nil, fmt.Errorf("snapshot location %q: keep=%q is not a number", rawURL, k)
			}
			keep = n
			if n == 0 {
				keep = -1
			}
			q.Del("keep")
		}
		if len(q) > 0 {
			return nil, fmt.Errorf("snapshot location %q: unknown parameter %s", rawURL, firstKey(q))
		}
		return openFile(u.Path, keep)
	case "s3":
		return openS3(ctx, u, opts.S3)
	default:
		return nil, fmt.Errorf("snapshot location %q: unsupported scheme %q (use file:///path or s3://bucket/key)", rawURL, u.Scheme)
	}
}

func firstKey(q url.Values) string { return slices.Sorted(maps.Keys(q))[0] }

// asideSuffix is the suffix a refused snapshot is kept under.
func asideSuffix(now time.Time) string {
	return "corrupt-" + now.UTC().Format("20060102T150405.000Z")
}
