package persist_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/persist"
)

func TestOpenLocations(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cases := []struct {
		url  string
		want string // the backend's String, or the error's text
		err  bool
	}{
		{url: "file://" + dir + "/snapshot.bin", want: "file://" + dir + "/snapshot.bin"},
		{url: dir + "/plain.bin", want: "file://" + dir + "/plain.bin"},
		{url: "file://" + dir + "/k.bin?keep=5", want: "file://" + dir + "/k.bin"},
		{url: "s3://bucket/path/to/snapshot.bin?region=eu-west-1", want: "s3://bucket/path/to/snapshot.bin"},
		{url: "s3://bucket/k?endpoint=http://127.0.0.1:7070", want: "s3://bucket/k"},
		{url: "", err: true, want: "empty URL"},
		{url: "file://host/x.bin", err: true, want: "three slashes"},
		{url: "file://" + dir + "/x.bin?keep=many", err: true, want: "not a number"},
		{url: "file://" + dir + "/x.bin?color=blue", err: true, want: "unknown parameter color"},
		{url: "s3://bucket", err: true, want: "s3://bucket/key"},
		{url: "s3://bucket/dir/", err: true, want: "s3://bucket/key"},
		{url: "s3://bucket/k?region=x&colour=1", err: true, want: "unknown parameter colour"},
		{url: "s3://bucket/k?endpoint=127.0.0.1:7070", err: true, want: "not an http(s) URL"},
		{url: "s3://bucket/k?path_style=maybe&region=x", err: true, want: "path_style"},
		{url: "ftp://host/x", err: true, want: `unsupported scheme "ftp"`},
		{url: dir, err: true, want: "is a directory"},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			b, err := persist.Open(ctx, c.url, persist.BackendOptions{})
			if c.err {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.want)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.want, b.String())
		})
	}
}

// The file backend refuses, at Open, a directory it could not write into.
func TestFileOpenRefusesBadDirectory(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()

	_, err := persist.Open(ctx, "file://"+dir+"/missing/snapshot.bin", persist.BackendOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "snapshot directory "+dir+"/missing does not exist")

	notDir := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(notDir, nil, 0o600))
	_, err = persist.Open(ctx, notDir+"/snapshot.bin", persist.BackendOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is not a directory")

	// Not writable: permissions for an ordinary user; root ignores them, so it
	// gets a directory no one can create files in.
	readOnly := filepath.Join(dir, "ro")
	require.NoError(t, os.Mkdir(readOnly, 0o500))
	if os.Geteuid() == 0 {
		readOnly = "/proc"
		if _, err := os.Stat("/proc/self"); err != nil {
			t.Skip("running as root without /proc: no unwritable directory to try")
		}
	}
	_, err = persist.Open(ctx, readOnly+"/snapshot.bin", persist.BackendOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "snapshot directory "+readOnly+" is not writable")
}

// A write replaces the file whole and keeps the previous N (default 3) beside
// it, newest first; no temporary file is left behind.
func TestFileWriteKeepsPrevious(t *testing.T) {
	path := tempSnapshot(t)
	b := openFile(t, path)
	ctx := context.Background()
	for i := range 5 {
		require.NoError(t, b.Write(ctx, []byte{byte('0' + i)}))
	}
	got, err := b.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "4", string(got))
	for i, want := range []string{"3", "2", "1"} {
		prev, err := os.ReadFile(path + "." + string(rune('1'+i)))
		require.NoError(t, err)
		assert.Equal(t, want, string(prev), "snapshot.bin.%d", i+1)
	}
	assert.Equal(t, []string{"snapshot.bin", "snapshot.bin.1", "snapshot.bin.2", "snapshot.bin.3"}, dirNames(t, filepath.Dir(path)))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "a snapshot may hold TLS keys (SDS)")

	// keep=0 in the URL keeps none.
	none := filepath.Join(t.TempDir(), "s.bin")
	nb, err := persist.Open(ctx, "file://"+none+"?keep=0", persist.BackendOptions{})
	require.NoError(t, err)
	require.NoError(t, nb.Write(ctx, []byte("a")))
	require.NoError(t, nb.Write(ctx, []byte("b")))
	assert.Equal(t, []string{"s.bin"}, dirNames(t, filepath.Dir(none)))
}

func TestFileSetAside(t *testing.T) {
	path := tempSnapshot(t)
	b := openFile(t, path)
	ctx := context.Background()
	_, err := b.Read(ctx)
	require.ErrorIs(t, err, persist.ErrNotFound)

	require.NoError(t, b.Write(ctx, []byte("bad snapshot")))
	aside, err := b.SetAside(ctx, "corrupt-20260301T120000.000Z")
	require.NoError(t, err)
	assert.Equal(t, path+".corrupt-20260301T120000.000Z", aside)
	kept, err := os.ReadFile(aside)
	require.NoError(t, err)
	assert.Equal(t, "bad snapshot", string(kept))
	_, err = b.Read(ctx)
	assert.ErrorIs(t, err, persist.ErrNotFound, "the refused snapshot no longer sits where a restore would read it")
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}
