package source

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkReloadOneFileChanged is a reload of a directory of n files, one
// cluster each, of which one changed since the last reload: every file is
// listed, read and hashed, the changed one parsed, and the reload commits one
// change. parse=all empties the parse cache before each reload, as if there
// were none: every file is parsed.
func BenchmarkReloadOneFileChanged(b *testing.B) {
	for _, bc := range []struct {
		n        int
		parseAll bool
	}{{1_000, false}, {1_000, true}, {10_000, false}, {10_000, true}} {
		parse := "changed"
		if bc.parseAll {
			parse = "all"
		}
		n := bc.n
		b.Run(fmt.Sprintf("files=%d/parse=%s", n, parse), func(b *testing.B) {
			dir := b.TempDir()
			for i := range n {
				name := fmt.Sprintf("c%05d", i)
				writeFile(b, dir, name+".yaml", cluster(name, "1s"))
			}
			src, _ := newSource(b, dir)
			src.guard.fraction = 1 // off: every reload here deletes nothing anyway
			if _, err := reload(src); err != nil {
				b.Fatal(err)
			}
			path := filepath.Join(dir, "c00000.yaml")
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if err := os.WriteFile(path, []byte(cluster("c00000", fmt.Sprintf("%ds", i%100+1))), 0o644); err != nil {
					b.Fatal(err)
				}
				if bc.parseAll {
					src.parsed = parseCache{}
				}
				res, err := src.tryReload(false)
				if err != nil {
					b.Fatal(err)
				}
				if res.Set != 1 && i > 0 {
					b.Fatalf("reload %d set %d resources, want 1", i, res.Set)
				}
			}
		})
	}
}
