package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
)

// The /debug/ pages that list every stream or every resource of a node or a
// scope answer a page at a time: ?offset=N (from 0) and ?limit=M entries, at
// most Options.MaxPage of them (--admin-max-page), and no more than
// Options.MaxBytes of JSON (--admin-max-bytes).
// The page says which entries it holds and the path of the next one, so that a
// fleet of thousands is read in bounded memory, page after page.

// pageRequest is the window of a list a page shows.
type pageRequest struct {
	offset, limit int
}

// parsePage reads ?offset and ?limit; limit defaults to, and is capped at, max.
func parsePage(q url.Values, max int) (pageRequest, error) {
	p := pageRequest{limit: max}
	for _, f := range []struct {
		name string
		v    *int
	}{{"offset", &p.offset}, {"limit", &p.limit}} {
		s := q.Get(f.name)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || (f.name == "limit" && n == 0) {
			return p, fmt.Errorf("?%s=%q: want a positive number", f.name, s)
		}
		*f.v = n
	}
	p.limit = min(p.limit, max)
	return p, nil
}

// nextPath is the path of the page after this one, which holds taken entries.
func (p pageRequest) nextPath(r *http.Request, taken int) string {
	return pathAt(r, p.offset+taken, p.limit)
}

// pathAt is r's path and query with offset and limit set.
func pathAt(r *http.Request, offset, limit int) string {
	q := r.URL.Query()
	q.Set("offset", strconv.Itoa(offset))
	q.Set("limit", strconv.Itoa(limit))
	return r.URL.Path + "?" + q.Encode()
}

// pageBudget counts the bytes of a page as writeJSON writes it (indented), so
// that it ends before exceeding its budget: the page's frame first (what it
// holds besides its entries), then each entry as it is added.
type pageBudget struct {
	max, used        int
	compact, scratch bytes.Buffer
}

// newPageBudget starts counting a page of at most max bytes whose frame,
// without its entries and with the longest next path it may have, is frame.
func newPageBudget(max int, frame any) (*pageBudget, error) {
	b := &pageBudget{max: max}
	n, err := b.size(frame, 0)
	if err != nil {
		return nil, err
	}
	b.used = n + 1 // writeJSON's Encoder ends with a newline
	return b, nil
}

// longestNext is a next path at least as long as any of r's: the one with the
// largest offset.
func longestNext(r *http.Request, limit int) string { return pathAt(r, math.MaxInt, limit) }

// fits reports whether v, an element of an array at indentation level depth
// in the page (2 for the elements of an array of the top object), fits in what
// is left, and counts it if it does.
func (b *pageBudget) fits(v any, depth int) (bool, error) {
	n, err := b.size(v, depth)
	if err != nil {
		return false, err
	}
	// Around an element: a newline, its indentation and a comma; and, for the
	// first of its array, the newline and indentation of the closing bracket.
	n += 2*(1+2*depth) + 1
	if b.used+n > b.max {
		return false, nil
	}
	b.used += n
	return true, nil
}

// frameFits reports whether the frame alone fits the budget.
func (b *pageBudget) frameFits() bool { return b.used <= b.max }

// size is the length of v indented as writeJSON indents it at level depth.
func (b *pageBudget) size(v any, depth int) (int, error) {
	b.compact.Reset()
	enc := json.NewEncoder(&b.compact)
	enc.SetEscapeHTML(false) // as writeJSON
	if err := enc.Encode(v); err != nil {
		return 0, err
	}
	compact := bytes.TrimSuffix(b.compact.Bytes(), []byte("\n"))
	b.scratch.Reset()
	prefix := make([]byte, 2*depth)
	for i := range prefix {
		prefix[i] = ' '
	}
	if err := json.Indent(&b.scratch, compact, string(prefix), "  "); err != nil {
		return 0, err
	}
	return b.scratch.Len(), nil
}

// writeTooLarge answers a page whose first entry, or frame, alone exceeds the
// budget.
func writeTooLarge(w http.ResponseWriter, max int, what, hint string) {
	writeJSONError(w, http.StatusUnprocessableEntity,
		"%s alone exceeds the page budget of %d bytes (--admin-max-bytes): %s", what, max, hint)
}
