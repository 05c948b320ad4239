package persist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// File keeps the snapshot in a local file. A write goes to a temporary file in
// the same directory, is synced, and is renamed over the target, and then the
// directory is synced: a crash leaves the old snapshot or the new one, never a
// mix. The previous snapshots are kept as <name>.1 … <name>.N. Create it with
// Open.
type File struct {
	// path is the snapshot's absolute path.
	path string
	// keep is how many previous snapshots to keep (0: none).
	keep int
	// mu serialises writes: rotation and rename are several steps.
	mu sync.Mutex
}

func openFile(path string, keep int) (*File, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("snapshot location %q: %w", path, err)
	}
	switch {
	case keep == 0:
		keep = DefaultKeep
	case keep < 0:
		keep = 0
	}
	dir := filepath.Dir(abs)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("snapshot directory %s does not exist: create it, or choose another snapshot location", dir)
	case err != nil:
		return nil, fmt.Errorf("snapshot directory %s: %w", dir, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("snapshot directory %s is not a directory", dir)
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("snapshot location %s is a directory: name a file in it", abs)
	}
	probe, err := os.CreateTemp(dir, "."+filepath.Base(abs)+".probe-*")
	if err != nil {
		return nil, fmt.Errorf("snapshot directory %s is not writable: %w", dir, err)
	}
	probe.Close()
	if err := os.Remove(probe.Name()); err != nil {
		return nil, fmt.Errorf("snapshot directory %s: removing a probe file: %w", dir, err)
	}
	return &File{path: abs, keep: keep}, nil
}

// Path is the snapshot file's path.
func (f *File) Path() string { return f.path }

// String returns the file URL of the snapshot.
func (f *File) String() string { return (&url.URL{Scheme: "file", Path: f.path}).String() }

// Read returns the snapshot file's content.
func (f *File) Read(ctx context.Context) ([]byte, error) {
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", f.path, ErrNotFound)
	}
	return data, err
}

// Write replaces the snapshot file with data, keeping the one it replaces as
// <name>.1 (and shifting the older ones up to <name>.N). It never reports a
// conflict: one process owns a snapshot file.
func (f *File) Write(ctx context.Context, data []byte) (err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir := filepath.Dir(f.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("snapshot: writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("snapshot: syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("snapshot: closing %s: %w", tmp.Name(), err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.rotate(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return syncDir(dir)
}

// rotate shifts <name>.i to <name>.i+1, dropping <name>.keep, and links the
// current snapshot as <name>.1. The current snapshot stays in place until the
// new one is renamed over it.
func (f *File) rotate() error {
	if f.keep == 0 {
		return nil
	}
	if _, err := os.Stat(f.path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	for i := f.keep - 1; i >= 1; i-- {
		err := os.Rename(f.previous(i), f.previous(i+1))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("snapshot: keeping previous snapshots: %w", err)
		}
	}
	first := f.previous(1)
	if err := os.Remove(first); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("snapshot: keeping previous snapshots: %w", err)
	}
	if err := os.Link(f.path, first); err != nil {
		// A file system without hard links: copy instead.
		if err := copyFile(f.path, first); err != nil {
			return fmt.Errorf("snapshot: keeping the previous snapshot: %w", err)
		}
	}
	return nil
}

// previous is the path of the i-th previous snapshot (1: the newest).
func (f *File) previous(i int) string { return f.path + "." + strconv.Itoa(i) }

// Kept is how many previous snapshots the file backend keeps (History).
func (f *File) Kept() int { return f.keep }

// Previous returns the content of <name>.n and its file URL (History).
func (f *File) Previous(ctx context.Context, n int) ([]byte, string, error) {
	path := f.previous(n)
	where := (&url.URL{Scheme: "file", Path: path}).String()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, where, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	return data, where, err
}

// SetAside renames the snapshot file to <name>.<suffix> and returns the new path.
func (f *File) SetAside(ctx context.Context, suffix string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	to := f.path + "." + suffix
	if err := os.Rename(f.path, to); err != nil {
		return "", fmt.Errorf("snapshot: setting %s aside: %w", f.path, err)
	}
	return to, syncDir(filepath.Dir(f.path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("snapshot: syncing directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("snapshot: syncing directory %s: %w", dir, err)
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
