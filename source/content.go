package source

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/leanxds/leanxds/resources"
	"github.com/leanxds/leanxds/store"
)

// A config directory (docs/config.md):
//
//	DIR/*.yaml, *.yml, *.json        the default scope
//	DIR/NAME/*.yaml, *.yml, *.json   scope NAME
//
// Names starting with "." are skipped (editor swap files, the ..data links of a
// Kubernetes ConfigMap volume), as are other extensions and deeper directories.

// DefaultScope is the scope of the files directly in the directory: the scope
// a stream.Server serves a node whose own scope holds nothing
// (stream.DefaultScope).
const DefaultScope = "default"

// configFile is one resource file and the scope it feeds.
type configFile struct {
	path  string
	scope string
	// stamp is the file's size and modification time when it was listed.
	stamp fileStamp
}

// placed is a resource and where it was read.
type placed struct {
	resources.Resource
	file string
	// index is the resource's position in its file, from 1.
	index int
}

// configDir is the content of a config directory, read and validated: what one
// reload commits.
type configDir struct {
	// scopes holds each scope's resources, by file name then position in the file.
	scopes map[string][]placed
	// files counts the resource files read.
	files int
	// bootstraps are the files skipped because they hold a client bootstrap.
	bootstraps []string
	// digest is a hash of every resource file's path and content: a held
	// reload is confirmed only for the content it was held for.
	digest [sha256.Size]byte
}

// readLimits bound what a reload reads, so that a huge file dropped in the
// directory by mistake is refused before it is read rather than held in memory
// whole (--max-file-bytes, --max-dir-bytes).
type readLimits struct {
	// fileBytes is the size of the largest resource file read.
	fileBytes int64
	// dirBytes is the most the resource files of the directory, its scopes
	// included, may hold together.
	dirBytes int64
}

// tooLargeError refuses a file, or the whole directory, that holds more bytes
// than its limit allows.
type tooLargeError struct {
	// path is the file, or the directory for the total.
	path string
	// size is the size found: the file's, or the total of the directory's.
	size int64
	// limit is the limit it exceeds, and flag the flag that sets it.
	limit int64
	flag  string
	// grew is set when the file was within the limit when listed and grew past
	// it while it was read: size is then only what was read.
	grew bool
}

func (e *tooLargeError) Error() string {
	switch {
	case e.grew:
		return fmt.Sprintf("%s: grew past %d bytes (%s) while it was read: not read", e.path, e.limit, e.flag)
	case e.flag == "--max-dir-bytes":
		return fmt.Sprintf("%s: the resource files hold %d bytes together, more than the %d of %s: nothing read",
			e.path, e.size, e.limit, e.flag)
	}
	return fmt.Sprintf("%s: %d bytes, more than the %d of %s: not read", e.path, e.size, e.limit, e.flag)
}

// isResourceFile reports whether a file name is read as resources.
func isResourceFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// listConfigDir lists the resource files of dir and the subdirectories that are
// scopes. A path that cannot be read (a dangling link, no permission) is an
// error rather than skipped: skipping it would delete its resources from every
// client.
func listConfigDir(dir string) (files []configFile, scopeDirs []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		fi, err := os.Stat(path) // follows links, as a ConfigMap volume uses them
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch {
		case fi.IsDir():
			scopeDirs = append(scopeDirs, path)
			sub, err := os.ReadDir(path)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, se := range sub {
				if strings.HasPrefix(se.Name(), ".") || !isResourceFile(se.Name()) {
					continue
				}
				sp := filepath.Join(path, se.Name())
				sfi, err := os.Stat(sp)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if sfi.Mode().IsRegular() {
					files = append(files, configFile{path: sp, scope: e.Name(), stamp: stampOf(sfi)})
				}
			}
		case fi.Mode().IsRegular() && isResourceFile(e.Name()):
			files = append(files, configFile{path: path, scope: DefaultScope, stamp: stampOf(fi)})
		}
	}
	return files, scopeDirs, errors.Join(errs...)
}

// readConfigDir reads and validates every resource file of dir. Any error rejects
// the whole directory: the error joins one *resources.LoadError (or a plain error
// for an unreadable path, or a *tooLargeError) per problem, each naming its file,
// and where known its resource and field.
func readConfigDir(dir string, lim readLimits) (*configDir, error) {
	files, _, err := listConfigDir(dir)
	if err != nil {
		return nil, err
	}
	return readConfigFiles(dir, files, lim, nil, nil)
}

// readConfigFiles reads and validates the files listConfigDir listed. Files
// larger than lim are refused from their listed size, before anything is read;
// a file that grows past its limit while it is read is refused too, with no
// more than the limit read. cache, if not nil, parses only the files whose
// bytes changed since the last call. afterRead, if not nil, is called with the
// path of each file once it is read.
func readConfigFiles(dir string, files []configFile, lim readLimits, cache *parseCache, afterRead func(path string)) (*configDir, error) {
	var errs []error
	var total int64
	for _, f := range files {
		total += f.stamp.size
		if f.stamp.size > lim.fileBytes {
			errs = append(errs, &tooLargeError{path: f.path, size: f.stamp.size, limit: lim.fileBytes, flag: "--max-file-bytes"})
		}
	}
	if total > lim.dirBytes {
		errs = append(errs, &tooLargeError{path: dir, size: total, limit: lim.dirBytes, flag: "--max-dir-bytes"})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	cfg := &configDir{scopes: make(map[string][]placed)}
	type key struct{ scope, typeURL, name string }
	first := make(map[key]placed)
	digest := sha256.New()
	total = 0
	parsed := cache.begin()
	defer cache.end(parsed)
	for _, f := range files {
		data, err := readLimited(f.path, lim.fileBytes)
		if afterRead != nil {
			afterRead(f.path)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if total += int64(len(data)); total > lim.dirBytes {
			// The files grew while they were read.
			errs = append(errs, &tooLargeError{path: dir, size: total, limit: lim.dirBytes, flag: "--max-dir-bytes", grew: true})
			break
		}
		fmt.Fprintf(digest, "%s\x00%d\x00", f.path, len(data))
		digest.Write(data)
		pf, err := cache.parse(parsed, f.path, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if pf.bootstrap {
			cfg.bootstraps = append(cfg.bootstraps, f.path)
			continue
		}
		res := pf.res
		cfg.files++
		for i, r := range res {
			p := placed{Resource: r, file: f.path, index: i + 1}
			k := key{f.scope, r.TypeURL, r.Name}
			if prev, dup := first[k]; dup {
				errs = append(errs, &resources.LoadError{
					File: f.path, Index: p.index, Name: r.Name, TypeURL: r.TypeURL,
					Err: fmt.Errorf("already defined in %s (resource #%d) for the same scope", prev.file, prev.index),
				})
				continue
			}
			first[k] = p
			cfg.scopes[f.scope] = append(cfg.scopes[f.scope], p)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	digest.Sum(cfg.digest[:0])
	return cfg, nil
}

// parseCache keeps what each file of the directory parsed to, keyed by its
// path and the hash of its bytes, so that a reload reads every file but parses
// only those whose bytes changed: a reload that changes one file of a large
// directory costs the read and hash of each file, and the parse and validation
// of one. It holds the resources of the files the last reload read, and no
// others: the decoded resources of the directory are kept between reloads, as
// they are during one. Bytes that failed to parse are not kept: they are
// parsed again, and their errors reported again, on each reload.
//
// The resources it hands out are shared between reloads: they are read, never
// modified.
type parseCache struct {
	files map[string]parsedFile
}

// parsedFile is what one file's bytes parsed to.
type parsedFile struct {
	sum [sha256.Size]byte
	res []resources.Resource
	// bootstrap is set for a client's bootstrap, which is skipped.
	bootstrap bool
}

// begin starts a reload's use of the cache: it returns the map that collects
// the files the reload parses, for end. A nil cache parses every file.
func (c *parseCache) begin() map[string]parsedFile {
	if c == nil {
		return nil
	}
	return make(map[string]parsedFile, len(c.files))
}

// end makes the files this reload parsed the cache, dropping the others.
func (c *parseCache) end(parsed map[string]parsedFile) {
	if c != nil {
		c.files = parsed
	}
}

// parse parses the bytes of a file, or returns what they parsed to last time.
func (c *parseCache) parse(parsed map[string]parsedFile, path string, data []byte) (parsedFile, error) {
	var sum [sha256.Size]byte
	if c != nil {
		sum = sha256.Sum256(data)
		if pf, ok := c.files[path]; ok && pf.sum == sum {
			parsed[path] = pf
			return pf, nil
		}
	}
	pf := parsedFile{sum: sum}
	res, err := resources.Parse(path, data)
	var boot *resources.BootstrapError
	switch {
	case err == nil:
		pf.res = res
	case errors.As(err, &boot) && boot.Client:
		// A client's bootstrap may sit beside the config it is served, as in
		// examples/edge; a static config is refused (resources.BootstrapError).
		pf.bootstrap = true
	default:
		return parsedFile{}, err
	}
	if c != nil {
		parsed[path] = pf
	}
	return pf, nil
}

// readLimited reads a file of at most limit bytes. The size was checked when
// the file was listed; the limit is checked again as it is read, in case the
// file grew since, so that no more than limit+1 bytes are ever held.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &tooLargeError{path: path, size: int64(len(data)), limit: limit, flag: "--max-file-bytes", grew: true}
	}
	return data, nil
}

// fileStamp is what tells that a file changed without reading it: its size
// and modification time.
type fileStamp struct {
	size  int64
	mtime time.Time
}

func stampOf(fi os.FileInfo) fileStamp { return fileStamp{size: fi.Size(), mtime: fi.ModTime()} }

// scopeNames returns the scopes the directory defines, sorted.
func (c *configDir) scopeNames() []string {
	return slices.Sorted(maps.Keys(c.scopes))
}

// count returns the number of resources of a scope, or of all when scope is "".
func (c *configDir) count(scope string) int {
	if scope != "" {
		return len(c.scopes[scope])
	}
	n := 0
	for _, rs := range c.scopes {
		n += len(rs)
	}
	return n
}

// changes returns the one commit that makes the store hold exactly the
// directory: every resource, and a ReplaceScope for each scope the directory has
// and for each in also (the scopes the store holds now), so that a removed
// subdirectory, a removed file or a removed resource is deleted. Unchanged
// resources are dropped by the store (dedup), so reapplying the same directory
// changes nothing.
func (c *configDir) changes(also []string) []store.Change {
	scopes := make(map[string]bool)
	for _, s := range also {
		scopes[s] = true
	}
	for s := range c.scopes {
		scopes[s] = true
	}
	var out []store.Change
	for _, s := range slices.Sorted(maps.Keys(scopes)) {
		out = append(out, store.ReplaceScope(s))
		for _, r := range c.scopes[s] {
			out = append(out, store.SetResource(s, r.Resource)) // validated and encoded by Parse: not again
		}
	}
	return out
}

// Summary describes a directory that was read and validated.
type Summary struct {
	// Files counts the resource files read.
	Files int
	// Scopes counts the resources of each scope.
	Scopes map[string]int
	// Bootstraps are the files skipped because they hold a client bootstrap.
	Bootstraps []string
}

// Resources returns the number of resources of every scope.
func (s Summary) Resources() int {
	n := 0
	for _, c := range s.Scopes {
		n += c
	}
	return n
}

// ScopeNames returns the scopes, sorted.
func (s Summary) ScopeNames() []string { return slices.Sorted(maps.Keys(s.Scopes)) }

// CheckDir reads and validates a config directory, checks its references and
// commits it to a scratch store: exactly what a reload of a Dir made with opts
// does, without serving it (leanxds validate). warnings are the dangling
// references opts.AllowDangling let through. Only the options on reading and
// references apply.
func CheckDir(dir string, opts DirOptions) (sum Summary, warnings []string, err error) {
	cfg, warnings, err := checkDir(dir, opts)
	if err != nil {
		return Summary{}, nil, err
	}
	return cfg.summary(), warnings, nil
}

// checkDir is CheckDir returning the content it checked, for ApplyEtcd: what
// apply writes is what validate accepts, by the same code.
func checkDir(dir string, opts DirOptions) (cfg *configDir, warnings []string, err error) {
	d := NewDir(dir, nil, opts)
	cfg, err = readConfigDir(d.dir, d.limits)
	if err != nil {
		return nil, nil, err
	}
	_, err = store.New().CommitChecked(func(next store.View, _ store.Result) error {
		warnings, err = cfg.checkRefs(next, d.allowDangling)
		return err
	}, cfg.changes(nil)...)
	if err != nil {
		return nil, nil, err
	}
	return cfg, warnings, nil
}

func (c *configDir) summary() Summary {
	s := Summary{Files: c.files, Scopes: make(map[string]int, len(c.scopes)), Bootstraps: c.bootstraps}
	for sc := range c.scopes {
		s.Scopes[sc] = c.count(sc)
	}
	return s
}
