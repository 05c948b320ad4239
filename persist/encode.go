package persist

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// Encode writes the content of v as a snapshot, with m in its header, followed
// by the history v keeps (store.View.History: each revision as a difference from
// the next newer one, so that it costs what changed; the newest
// MaxHistoryRevisions revisions and MaxHistoryEntries entries at most) and m's
// attachments, and returns it with the header it holds. It is deterministic: the
// same view and Meta give the same bytes. The content section depends on the
// content alone (not on Meta, revisions, commit times, history or
// attachments), so Header.ContentDigest, or ContentDigest, compares content
// across snapshots and stores.
//
// The result is allocated once, at its final size.
func Encode(v store.View, m Meta) ([]byte, Header) {
	if m.WrittenAt.IsZero() {
		m.WrittenAt = time.Now()
	}
	p := planContent(v)
	hist := appendHistory(nil, v)
	atts := appendAttachments(nil, m.Attachments)
	h := Header{
		WrittenAt:   m.WrittenAt,
		Revision:    m.Revision,
		CommittedAt: v.CommittedAt(),
		Resources:   p.resources,
		Writer:      m.Writer,
		Tables:      p.tableRevisions(),
	}
	hdrSize := headerSize(&h)
	bodyLen := protowire.SizeTag(bodyHeader) + protowire.SizeBytes(hdrSize) + p.size + len(hist) + len(atts)
	total := prefixLen + bodyLen + checksumLen

	out := make([]byte, 0, total)
	out = append(out, Magic...)
	out = binary.BigEndian.AppendUint32(out, FormatVersion)
	out = binary.BigEndian.AppendUint64(out, uint64(bodyLen))
	// The header holds the digest of the content that follows it: write the
	// content at its place first, then the header in the room left before it.
	hdrAt := len(out)
	contentAt := hdrAt + protowire.SizeTag(bodyHeader) + protowire.SizeBytes(hdrSize)
	w := sink{buf: out[contentAt:contentAt]}
	p.write(&w)
	h.ContentDigest = sha256.Sum256(w.buf)
	hdr := protowire.AppendTag(out[hdrAt:hdrAt], bodyHeader, protowire.BytesType)
	hdr = protowire.AppendVarint(hdr, uint64(hdrSize))
	hdr = appendHeader(hdr, &h)
	if len(w.buf) != p.size || hdrAt+len(hdr) != contentAt {
		// A size computed one way and written another: a bug here, not bad input.
		panic(fmt.Sprintf("persist: snapshot sections encoded to %d and %d bytes, planned %d and %d",
			len(hdr), len(w.buf), contentAt-hdrAt, p.size))
	}
	out = out[:contentAt+len(w.buf)]
	out = append(out, hist...)
	out = append(out, atts...)
	sum := sha256.Sum256(out)
	out = append(out, sum[:]...)
	return out, h
}

// ContentDigest returns the Header.ContentDigest that Encode would record for v,
// without building the snapshot: it streams the content section through SHA-256.
func ContentDigest(v store.View) [sha256.Size]byte {
	p := planContent(v)
	h := sha256.New()
	w := sink{buf: make([]byte, 0, 32<<10), h: h}
	p.write(&w)
	w.flush()
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// contentPlan is the content of a view in snapshot order, with its encoded sizes.
type contentPlan struct {
	scopes    []scopePlan
	size      int // the content section's length
	resources int
}

type scopePlan struct {
	name   string
	size   int // the scope message's length
	tables []tablePlan
}

type tablePlan struct {
	typeURL  string
	revision uint64
	size     int // the table message's length
	entries  []*store.Entry
}

func planContent(v store.View) contentPlan {
	var p contentPlan
	for _, name := range v.Scopes() {
		sp := scopePlan{name: name, size: sizeString(scopeName, name)}
		for typeURL, t := range v.Tables(name) {
			tp := tablePlan{typeURL: typeURL, revision: t.Revision(), entries: t.Sorted(), size: sizeString(tableTypeURL, typeURL)}
			for _, e := range tp.entries {
				tp.size += sizeMessage(tableEntry, entrySize(e))
			}
			p.resources += len(tp.entries)
			sp.size += sizeMessage(scopeTable, tp.size)
			sp.tables = append(sp.tables, tp)
		}
		p.size += sizeMessage(bodyScope, sp.size)
		p.scopes = append(p.scopes, sp)
	}
	return p
}

func (p *contentPlan) tableRevisions() []TableRevision {
	var out []TableRevision
	for _, s := range p.scopes {
		for _, t := range s.tables {
			out = append(out, TableRevision{Scope: s.name, TypeURL: t.typeURL, Revision: t.revision})
		}
	}
	return out
}

func (p *contentPlan) write(w *sink) {
	for _, s := range p.scopes {
		w.tag(bodyScope, protowire.BytesType)
		w.varint(uint64(s.size))
		w.str(scopeName, s.name)
		for _, t := range s.tables {
			w.tag(scopeTable, protowire.BytesType)
			w.varint(uint64(t.size))
			w.str(tableTypeURL, t.typeURL)
			for _, e := range t.entries {
				w.tag(tableEntry, protowire.BytesType)
				w.varint(uint64(entrySize(e)))
				w.str(entryName, e.Name)
				w.str(entryVersion, e.Version)
				w.tag(entryBody, protowire.BytesType)
				w.varint(uint64(len(e.Body)))
				w.raw(e.Body)
			}
		}
	}
}

func entrySize(e *store.Entry) int {
	return sizeString(entryName, e.Name) + sizeString(entryVersion, e.Version) + sizeMessage(entryBody, len(e.Body))
}

func sizeString(num protowire.Number, s string) int { return sizeMessage(num, len(s)) }

// sizeMessage is the size of a length-delimited field of n bytes.
func sizeMessage(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

func headerSize(h *Header) int {
	n := protowire.SizeTag(headerWrittenAt) + protowire.SizeFixed64() +
		protowire.SizeTag(headerRevision) + protowire.SizeFixed64() +
		sizeMessage(headerDigest, sha256.Size) +
		protowire.SizeTag(headerResources) + protowire.SizeVarint(uint64(h.Resources)) +
		sizeString(headerWriter, h.Writer)
	if !h.CommittedAt.IsZero() {
		n += protowire.SizeTag(headerCommittedAt) + protowire.SizeFixed64()
	}
	for _, t := range h.Tables {
		n += sizeMessage(headerTable, tableRevisionSize(t))
	}
	return n
}

func tableRevisionSize(t TableRevision) int {
	return sizeString(tableRevScope, t.Scope) + sizeString(tableRevTypeURL, t.TypeURL) +
		protowire.SizeTag(tableRevRevision) + protowire.SizeVarint(t.Revision)
}

func appendHeader(b []byte, h *Header) []byte {
	b = protowire.AppendTag(b, headerWrittenAt, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, uint64(h.WrittenAt.UnixNano()))
	b = protowire.AppendTag(b, headerRevision, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, h.Revision)
	if !h.CommittedAt.IsZero() {
		b = protowire.AppendTag(b, headerCommittedAt, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, uint64(h.CommittedAt.UnixNano()))
	}
	b = protowire.AppendTag(b, headerDigest, protowire.BytesType)
	b = protowire.AppendBytes(b, h.ContentDigest[:])
	b = protowire.AppendTag(b, headerResources, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(h.Resources))
	b = protowire.AppendTag(b, headerWriter, protowire.BytesType)
	b = protowire.AppendString(b, h.Writer)
	for _, t := range h.Tables {
		b = protowire.AppendTag(b, headerTable, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(tableRevisionSize(t)))
		b = protowire.AppendTag(b, tableRevScope, protowire.BytesType)
		b = protowire.AppendString(b, t.Scope)
		b = protowire.AppendTag(b, tableRevTypeURL, protowire.BytesType)
		b = protowire.AppendString(b, t.TypeURL)
		b = protowire.AppendTag(b, tableRevRevision, protowire.VarintType)
		b = protowire.AppendVarint(b, t.Revision)
	}
	return b
}

// sink receives encoded content: into buf, or, when h is set, through buf into h,
// with large bodies passed to h directly rather than copied.
type sink struct {
	buf []byte
	h   hash.Hash
}

func (w *sink) tag(num protowire.Number, typ protowire.Type) {
	w.buf = protowire.AppendTag(w.buf, num, typ)
}

func (w *sink) varint(v uint64) { w.buf = protowire.AppendVarint(w.buf, v) }

func (w *sink) str(num protowire.Number, s string) {
	w.tag(num, protowire.BytesType)
	w.buf = protowire.AppendString(w.buf, s)
}

func (w *sink) raw(b []byte) {
	if w.h == nil {
		w.buf = append(w.buf, b...)
		return
	}
	if len(b) > 512 {
		w.flush()
		w.h.Write(b)
		return
	}
	w.buf = append(w.buf, b...)
	if len(w.buf) > 16<<10 {
		w.flush()
	}
}

func (w *sink) flush() {
	if w.h != nil {
		w.h.Write(w.buf)
		w.buf = w.buf[:0]
	}
}

// appendHistory appends the history section of v to b: one message per scope
// with a history, sorted by name, holding its revisions newest first, each but
// the first with the entries that differ from the next newer one. When the
// history is larger than the bounds (MaxHistoryRevisions, MaxHistoryEntries),
// the oldest revisions, every scope's, are left out: each scope keeps its
// revisions from one revision number on, the same for every scope.
func appendHistory(b []byte, v store.View) []byte {
	all := v.Revisions() // newest first
	hists := map[string][]historyRev{}
	for _, r := range all {
		hists[r.Scope] = append(hists[r.Scope], historyRev{r: r})
	}
	kept := map[string]int{}
	revisions, entries := 0, 0
	for i := 0; i < len(all); {
		j, add := i, 0 // the revisions of one commit go whole or not at all
		for ; j < len(all) && all[j].Revision == all[i].Revision; j++ {
			sh := hists[all[j].Scope]
			if k := kept[all[j].Scope]; k > 0 {
				sh[k].set, sh[k].absent = historyDiff(sh[k].r, sh[k-1].r)
				add += len(sh[k].set) + len(sh[k].absent)
			}
		}
		if revisions+(j-i) > MaxHistoryRevisions || entries+add > MaxHistoryEntries {
			break
		}
		revisions, entries = revisions+(j-i), entries+add
		for ; i < j; i++ {
			kept[all[i].Scope]++
		}
	}
	scopes := slices.Sorted(maps.Keys(kept))
	var msg, rb []byte
	for _, scope := range scopes {
		msg = protowire.AppendTag(msg[:0], historyScope, protowire.BytesType)
		msg = protowire.AppendString(msg, scope)
		for _, r := range hists[scope][:kept[scope]] {
			rb = appendRevision(rb[:0], &r)
			msg = protowire.AppendTag(msg, historyRevision, protowire.BytesType)
			msg = protowire.AppendBytes(msg, rb)
		}
		b = protowire.AppendTag(b, bodyHistory, protowire.BytesType)
		b = protowire.AppendBytes(b, msg)
	}
	return b
}

// historyRev is a revision of a scope's history and its difference from the
// next newer one, as a snapshot holds them.
type historyRev struct {
	r      store.Revision
	set    []HistoryEntry
	absent []HistoryName
}

// historyDiff returns what older held that newer does not hold as it was, and
// what newer holds that older did not, each in push order then by name. It
// costs what differs (store.Table.Diff).
func historyDiff(older, newer store.Revision) (set []HistoryEntry, absent []HistoryName) {
	for _, t := range protocol.Types() {
		a, b := older.Table(t.URL), newer.Table(t.URL)
		if a == b {
			continue
		}
		s0, a0 := len(set), len(absent)
		for was, is := range a.Diff(b) {
			if was != nil {
				set = append(set, HistoryEntry{TypeURL: t.URL, Entry: Entry{Name: was.Name, Version: was.Version, Body: was.Body}})
			} else {
				absent = append(absent, HistoryName{TypeURL: t.URL, Name: is.Name})
			}
		}
		slices.SortFunc(set[s0:], func(x, y HistoryEntry) int { return strings.Compare(x.Name, y.Name) })
		slices.SortFunc(absent[a0:], func(x, y HistoryName) int { return strings.Compare(x.Name, y.Name) })
	}
	return set, absent
}

// appendRevision appends the fields of one revision of a history.
func appendRevision(b []byte, h *historyRev) []byte {
	r := &h.r
	b = protowire.AppendTag(b, revRevision, protowire.VarintType)
	b = protowire.AppendVarint(b, r.Revision)
	b = protowire.AppendTag(b, revAt, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, uint64(r.At.UnixNano()))
	b = appendString(b, revSource, truncate(r.Source, MaxSourceBytes))
	b = protowire.AppendTag(b, revResources, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(r.Resources))
	for _, f := range []struct {
		num protowire.Number
		n   int
	}{{revAdded, r.Summary.Added}, {revChanged, r.Summary.Changed}, {revRemoved, r.Summary.Removed}} {
		if f.n != 0 {
			b = protowire.AppendTag(b, f.num, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(f.n))
		}
	}
	for _, n := range r.Summary.Names[:min(len(r.Summary.Names), store.MaxSummaryNames)] {
		b = appendString(b, revName, n)
	}
	if r.First {
		b = protowire.AppendTag(b, revFirst, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	if r.Until != 0 {
		b = protowire.AppendTag(b, revUntil, protowire.VarintType)
		b = protowire.AppendVarint(b, r.Until)
	}
	for _, e := range h.set {
		n := sizeString(setTypeURL, e.TypeURL) + sizeString(setName, e.Name) + sizeString(setVersion, e.Version) + sizeMessage(setBody, len(e.Body))
		b = protowire.AppendTag(b, revSet, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(n))
		b = appendString(b, setTypeURL, e.TypeURL)
		b = appendString(b, setName, e.Name)
		b = appendString(b, setVersion, e.Version)
		b = protowire.AppendTag(b, setBody, protowire.BytesType)
		b = protowire.AppendBytes(b, e.Body)
	}
	for _, a := range h.absent {
		b = protowire.AppendTag(b, revAbsent, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizeString(absentTypeURL, a.TypeURL)+sizeString(absentName, a.Name)))
		b = appendString(b, absentTypeURL, a.TypeURL)
		b = appendString(b, absentName, a.Name)
	}
	return b
}

// appendAttachments appends one message per attachment, sorted by name.
func appendAttachments(b []byte, atts map[string][]byte) []byte {
	for _, name := range slices.Sorted(maps.Keys(atts)) {
		data := atts[name]
		b = protowire.AppendTag(b, bodyAttachment, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizeString(attachmentName, name)+sizeMessage(attachmentData, len(data))))
		b = appendString(b, attachmentName, name)
		b = protowire.AppendTag(b, attachmentData, protowire.BytesType)
		b = protowire.AppendBytes(b, data)
	}
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// truncate cuts s to at most n bytes, at a UTF-8 boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
