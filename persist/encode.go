package persist

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/leanxds/leanxds/store"
)

// Encode writes the content of v as a snapshot, with m in its header, and returns
// it with the header it holds. It is deterministic: the same view and Meta give
// the same bytes. The content section depends on the content alone (not on Meta,
// revisions or commit times), so Header.ContentDigest, or ContentDigest,
// compares content across snapshots and stores.
//
// The result is allocated once, at its final size.
func Encode(v store.View, m Meta) ([]byte, Header) {
	if m.WrittenAt.IsZero() {
		m.WrittenAt = time.Now()
	}
	p := planContent(v)
	h := Header{
		WrittenAt:   m.WrittenAt,
		Revision:    m.Revision,
		CommittedAt: v.CommittedAt(),
		Resources:   p.resources,
		Writer:      m.Writer,
		Tables:      p.tableRevisions(),
	}
	hdrSize := headerSize(&h)
	bodyLen := protowire.SizeTag(bodyHeader) + protowire.SizeBytes(hdrSize) + p.size
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
