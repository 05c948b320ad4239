package persist

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// Decode checks data and parses it. The checks run in order, before anything
// is parsed: magic, format version, length (truncated or trailing bytes), the
// SHA-256 checksum over the whole; then the body must parse and its content
// match the digest in its header. The error of a failed check wraps ErrMagic,
// ErrFormatVersion, ErrLength, ErrChecksum or ErrBody and says what was found.
//
// Entry bodies in the result alias data.
func Decode(data []byte) (*Snapshot, error) { return decode(data, false) }

// decodeAliased is Decode with entry names and versions that alias data too,
// so that decoding allocates nothing per entry: for Restore, which owns data,
// never modifies it, and lets no entry string outlive the restore (the store
// copies the names it keeps).
func decodeAliased(data []byte) (*Snapshot, error) { return decode(data, true) }

func decode(data []byte, alias bool) (*Snapshot, error) {
	if n := min(len(data), len(Magic)); string(data[:n]) != Magic[:n] || n == 0 {
		return nil, fmt.Errorf("%w: the data starts with %q, not %q: not a leanxds snapshot", ErrMagic, data[:n], Magic)
	}
	if len(data) < prefixLen {
		return nil, fmt.Errorf("%w: %d bytes, fewer than the %d-byte header: truncated", ErrLength, len(data), prefixLen)
	}
	version := binary.BigEndian.Uint32(data[len(Magic):])
	if version != FormatVersion && version != formatVersion1 {
		return nil, fmt.Errorf("%w: format version %d; this build reads versions %d and %d", ErrFormatVersion, version, formatVersion1, FormatVersion)
	}
	bodyLen := binary.BigEndian.Uint64(data[len(Magic)+4:])
	if bodyLen > maxBody {
		return nil, fmt.Errorf("%w: header claims a body of %d bytes", ErrLength, bodyLen)
	}
	want := uint64(prefixLen) + bodyLen + checksumLen
	switch have := uint64(len(data)); {
	case have < want:
		return nil, fmt.Errorf("%w: %d bytes, the header says %d: truncated", ErrLength, have, want)
	case have > want:
		return nil, fmt.Errorf("%w: %d bytes, the header says %d: %d bytes too many", ErrLength, have, want, have-want)
	}
	end := prefixLen + int(bodyLen)
	sum := sha256.Sum256(data[:end])
	if stored := data[end:]; string(stored) != string(sum[:]) {
		return nil, fmt.Errorf("%w: stored SHA-256 %x, computed %x: the snapshot was altered", ErrChecksum, stored, sum)
	}
	s, err := parseBody(data[prefixLen:end], alias, version)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBody, err)
	}
	return s, nil
}

// parseBody parses a body whose checksum matched, of format version.
func parseBody(b []byte, alias bool, version uint32) (*Snapshot, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num != bodyHeader || typ != protowire.BytesType {
		return nil, errors.New("the body does not start with its header")
	}
	hdr, m := protowire.ConsumeBytes(b[n:])
	if m < 0 {
		return nil, fmt.Errorf("header: %w", protowire.ParseError(m))
	}
	s := &Snapshot{}
	if err := parseHeader(hdr, &s.Header); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	rest := b[n+m:]
	// The content section is the scope messages that follow the header;
	// version 2 puts the history and the attachments after it.
	contentLen := 0
	for contentLen < len(rest) {
		num, typ, n := protowire.ConsumeTag(rest[contentLen:])
		if n < 0 || num != bodyScope || typ != protowire.BytesType {
			break
		}
		_, m := protowire.ConsumeBytes(rest[contentLen+n:])
		if m < 0 {
			return nil, fmt.Errorf("content: %w", protowire.ParseError(m))
		}
		contentLen += n + m
	}
	content, after := rest[:contentLen], rest[contentLen:]
	if sha256.Sum256(content) != s.ContentDigest {
		return nil, errors.New("the content does not match the digest in the header")
	}
	count := 0
	var prevScope string
	err := fields(content, func(num protowire.Number, typ protowire.Type, v []byte) error {
		sc, err := parseScope(v, alias)
		if err != nil {
			return err
		}
		if len(s.Scopes) > 0 && sc.Name <= prevScope {
			return fmt.Errorf("scope %q out of order or repeated", sc.Name)
		}
		prevScope = sc.Name
		for _, t := range sc.Tables {
			count += len(t.Entries)
		}
		s.Scopes = append(s.Scopes, sc)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if count != s.Resources {
		return nil, fmt.Errorf("%d resources, the header says %d", count, s.Resources)
	}
	if err := parseExtras(after, alias, version, s); err != nil {
		return nil, err
	}
	return s, nil
}

// parseExtras parses what follows the content: in version 2, the history
// (field 3, per scope) then the attachments (field 4), within the bounds
// (MaxHistoryRevisions, ...); nothing in version 1.
func parseExtras(b []byte, alias bool, version uint32, s *Snapshot) error {
	var lim limits
	counts := map[string]int{}
	for _, sc := range s.Scopes {
		for _, t := range sc.Tables {
			counts[sc.Name] += len(t.Entries)
		}
	}
	last := protowire.Number(bodyScope)
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if version == formatVersion1 || typ != protowire.BytesType || (num != bodyHistory && num != bodyAttachment) {
			return fmt.Errorf("unexpected field %d after the content", num)
		}
		if num < last {
			return fmt.Errorf("field %d out of order", num)
		}
		last = num
		switch num {
		case bodyHistory:
			h, err := parseHistory(v, alias, &lim)
			if err != nil {
				return fmt.Errorf("history: %w", err)
			}
			if n := len(s.History); n > 0 && h.Scope <= s.History[n-1].Scope {
				return fmt.Errorf("history: scope %q out of order or repeated", h.Scope)
			}
			if got, want := h.Revisions[0].Revision.Resources, counts[h.Scope]; got != want {
				return fmt.Errorf("history: scope %q: its newest revision holds %d resources, the content %d", h.Scope, got, want)
			}
			s.History = append(s.History, h)
		case bodyAttachment:
			name, data, err := parseAttachment(v, &lim)
			if err != nil {
				return err
			}
			if s.Attachments == nil {
				s.Attachments = map[string][]byte{}
			} else if prev := lim.lastAttachment; name <= prev {
				return fmt.Errorf("attachment %q out of order or repeated", name)
			}
			lim.lastAttachment = name
			s.Attachments[name] = data
		}
		return nil
	})
}

// limits counts what a snapshot's history and attachments hold, against their
// bounds.
type limits struct {
	revisions, entries    int
	attachments, attBytes int
	lastAttachment        string
}

func parseHistory(b []byte, alias bool, lim *limits) (ScopeHistory, error) {
	var h ScopeHistory
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == historyScope && typ == protowire.BytesType:
			h.Scope = string(v)
		case num == historyRevision && typ == protowire.BytesType:
			if lim.revisions++; lim.revisions > MaxHistoryRevisions {
				return fmt.Errorf("more than %d revisions (MaxHistoryRevisions)", MaxHistoryRevisions)
			}
			r, err := parseRevision(v, alias, lim)
			if err != nil {
				return fmt.Errorf("scope %q: %w", h.Scope, err)
			}
			switch n := len(h.Revisions); {
			case r.Revision.Revision == 0:
				return fmt.Errorf("scope %q: revision 0", h.Scope)
			case n == 0 && (len(r.Set) > 0 || len(r.Absent) > 0):
				return fmt.Errorf("scope %q: its newest revision has differences: it is the content", h.Scope)
			case n > 0 && r.Revision.Revision >= h.Revisions[n-1].Revision.Revision:
				return fmt.Errorf("scope %q: revision %d out of order or repeated", h.Scope, r.Revision.Revision)
			case n > 0 && r.Revision.Until != 0 && (r.Revision.Until <= r.Revision.Revision || r.Revision.Until > h.Revisions[n-1].Revision.Revision):
				return fmt.Errorf("scope %q: revision %d held until %d, outside its place", h.Scope, r.Revision.Revision, r.Revision.Until)
			case n == 0 && r.Revision.Until != 0:
				return fmt.Errorf("scope %q: its newest revision has an end", h.Scope)
			}
			h.Revisions = append(h.Revisions, r)
		}
		return nil
	})
	if err == nil && len(h.Revisions) == 0 {
		err = fmt.Errorf("scope %q: no revision", h.Scope)
	}
	for i := range h.Revisions {
		h.Revisions[i].Revision.Scope = h.Scope
	}
	return h, err
}

func parseRevision(b []byte, alias bool, lim *limits) (HistoryRevision, error) {
	var hr HistoryRevision
	r := &hr.Revision
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		varint := func() (uint64, error) {
			if typ != protowire.VarintType {
				return 0, fmt.Errorf("field %d is not a varint", num)
			}
			x, _ := protowire.ConsumeVarint(v)
			return x, nil
		}
		var x uint64
		var err error
		switch num {
		case revRevision, revResources, revAdded, revChanged, revRemoved, revFirst, revUntil:
			if x, err = varint(); err != nil {
				return err
			}
			if x > math.MaxInt32 && num != revRevision && num != revUntil {
				return fmt.Errorf("field %d: %d is out of range", num, x)
			}
		}
		switch {
		case num == revRevision:
			r.Revision = x
		case num == revAt && typ == protowire.Fixed64Type:
			r.At = time.Unix(0, int64(binary.LittleEndian.Uint64(v)))
		case num == revSource && typ == protowire.BytesType:
			if len(v) > MaxSourceBytes {
				return fmt.Errorf("a source of %d bytes (MaxSourceBytes %d)", len(v), MaxSourceBytes)
			}
			r.Source = string(v)
		case num == revResources:
			r.Resources = int(x)
		case num == revAdded:
			r.Summary.Added = int(x)
		case num == revChanged:
			r.Summary.Changed = int(x)
		case num == revRemoved:
			r.Summary.Removed = int(x)
		case num == revName && typ == protowire.BytesType:
			if len(r.Summary.Names) == store.MaxSummaryNames {
				return fmt.Errorf("more than %d names in a summary", store.MaxSummaryNames)
			}
			r.Summary.Names = append(r.Summary.Names, string(v))
		case num == revFirst:
			r.First = x != 0
		case num == revUntil:
			r.Until = x
		case (num == revSet || num == revAbsent) && typ == protowire.BytesType:
			if lim.entries++; lim.entries > MaxHistoryEntries {
				return fmt.Errorf("more than %d entries (MaxHistoryEntries)", MaxHistoryEntries)
			}
			var typeURL, name, version string
			var body []byte
			err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
				if typ != protowire.BytesType {
					return nil
				}
				switch num {
				case setTypeURL: // == absentTypeURL
					typeURL = string(v)
				case setName: // == absentName
					name = str(v, alias)
				case setVersion:
					version = str(v, alias)
				case setBody:
					body = v
				}
				return nil
			})
			if err != nil {
				return err
			}
			if _, ok := protocol.Lookup(typeURL); !ok {
				return fmt.Errorf("type %q is not served by this build", typeURL)
			}
			if num == revSet {
				if n := len(hr.Set); n > 0 && !nameBefore(hr.Set[n-1].TypeURL, hr.Set[n-1].Name, typeURL, name) {
					return fmt.Errorf("%s %q out of order or repeated", protocol.Short(typeURL), name)
				}
				hr.Set = append(hr.Set, HistoryEntry{TypeURL: typeURL, Entry: Entry{Name: name, Version: version, Body: body}})
			} else {
				if n := len(hr.Absent); n > 0 && !nameBefore(hr.Absent[n-1].TypeURL, hr.Absent[n-1].Name, typeURL, name) {
					return fmt.Errorf("%s %q out of order or repeated", protocol.Short(typeURL), name)
				}
				hr.Absent = append(hr.Absent, HistoryName{TypeURL: typeURL, Name: name})
			}
		}
		return nil
	})
	if err == nil {
		// A resource is either held differently or not held at all.
		i, j := 0, 0
		for i < len(hr.Set) && j < len(hr.Absent) {
			a, b := hr.Set[i], hr.Absent[j]
			switch {
			case a.TypeURL == b.TypeURL && a.Name == b.Name:
				err = fmt.Errorf("%s %q both held and absent", protocol.Short(a.TypeURL), a.Name)
				i = len(hr.Set)
			case nameBefore(a.TypeURL, a.Name, b.TypeURL, b.Name):
				i++
			default:
				j++
			}
		}
	}
	if err != nil {
		return hr, fmt.Errorf("revision %d: %w", r.Revision, err)
	}
	return hr, nil
}

// nameBefore reports whether (t1, n1) comes before (t2, n2): push order, then
// name.
func nameBefore(t1, n1, t2, n2 string) bool {
	if t1 != t2 {
		return protocol.PushOrder(t1, t2) < 0
	}
	return n1 < n2
}

func parseAttachment(b []byte, lim *limits) (string, []byte, error) {
	var name string
	var data []byte
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == attachmentName && typ == protowire.BytesType:
			name = string(v)
		case num == attachmentData && typ == protowire.BytesType:
			data = v
		}
		return nil
	})
	switch {
	case err != nil:
		return "", nil, fmt.Errorf("attachment: %w", err)
	case name == "" || len(name) > MaxAttachmentName:
		return "", nil, fmt.Errorf("attachment: a name of %d bytes (1 to MaxAttachmentName %d)", len(name), MaxAttachmentName)
	}
	if lim.attachments++; lim.attachments > MaxAttachments {
		return "", nil, fmt.Errorf("more than %d attachments (MaxAttachments)", MaxAttachments)
	}
	if lim.attBytes += len(data); lim.attBytes > MaxAttachmentBytes {
		return "", nil, fmt.Errorf("attachments of more than %d bytes (MaxAttachmentBytes)", MaxAttachmentBytes)
	}
	return name, bytes.Clone(data), nil
}

func parseHeader(b []byte, h *Header) error {
	haveDigest := false
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == headerWrittenAt && typ == protowire.Fixed64Type:
			h.WrittenAt = time.Unix(0, int64(binary.LittleEndian.Uint64(v)))
		case num == headerRevision && typ == protowire.Fixed64Type:
			h.Revision = binary.LittleEndian.Uint64(v)
		case num == headerCommittedAt && typ == protowire.Fixed64Type:
			h.CommittedAt = time.Unix(0, int64(binary.LittleEndian.Uint64(v)))
		case num == headerDigest && typ == protowire.BytesType:
			if len(v) != sha256.Size {
				return fmt.Errorf("content digest of %d bytes", len(v))
			}
			copy(h.ContentDigest[:], v)
			haveDigest = true
		case num == headerResources && typ == protowire.VarintType:
			x, _ := protowire.ConsumeVarint(v)
			h.Resources = int(x)
		case num == headerWriter && typ == protowire.BytesType:
			h.Writer = string(v)
		case num == headerTable && typ == protowire.BytesType:
			var t TableRevision
			err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
				switch {
				case num == tableRevScope && typ == protowire.BytesType:
					t.Scope = string(v)
				case num == tableRevTypeURL && typ == protowire.BytesType:
					t.TypeURL = string(v)
				case num == tableRevRevision && typ == protowire.VarintType:
					t.Revision, _ = protowire.ConsumeVarint(v)
				}
				return nil
			})
			if err != nil {
				return err
			}
			h.Tables = append(h.Tables, t)
		}
		// Fields of later revisions of format 1 are skipped: they may only add.
		return nil
	})
	if err == nil && !haveDigest {
		return errors.New("no content digest")
	}
	return err
}

func parseScope(b []byte, alias bool) (Scope, error) {
	var sc Scope
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == scopeName && typ == protowire.BytesType:
			sc.Name = string(v)
		case num == scopeTable && typ == protowire.BytesType:
			t, err := parseTable(v, alias)
			if err != nil {
				return fmt.Errorf("scope %q: %w", sc.Name, err)
			}
			if n := len(sc.Tables); n > 0 && protocol.PushOrder(sc.Tables[n-1].TypeURL, t.TypeURL) >= 0 {
				return fmt.Errorf("scope %q: table %s out of order or repeated", sc.Name, t.TypeURL)
			}
			sc.Tables = append(sc.Tables, t)
		}
		return nil
	})
	return sc, err
}

func parseTable(b []byte, alias bool) (Table, error) {
	var t Table
	n := 0
	if err := fields(b, func(num protowire.Number, _ protowire.Type, _ []byte) error {
		if num == tableEntry {
			n++
		}
		return nil
	}); err != nil {
		return t, err
	}
	if n > 0 {
		t.Entries = make([]Entry, 0, n) // counted first: the entries slice is allocated once
	}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == tableTypeURL && typ == protowire.BytesType:
			t.TypeURL = string(v)
			if _, ok := protocol.Lookup(t.TypeURL); !ok {
				return fmt.Errorf("type %q is not served by this build", t.TypeURL)
			}
		case num == tableEntry && typ == protowire.BytesType:
			var e Entry
			err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
				switch {
				case num == entryName && typ == protowire.BytesType:
					e.Name = str(v, alias)
				case num == entryVersion && typ == protowire.BytesType:
					e.Version = str(v, alias)
				case num == entryBody && typ == protowire.BytesType:
					e.Body = v
				}
				return nil
			})
			if err != nil {
				return err
			}
			if n := len(t.Entries); n > 0 && e.Name <= t.Entries[n-1].Name {
				return fmt.Errorf("%s %q out of order or repeated", protocol.Short(t.TypeURL), e.Name)
			}
			t.Entries = append(t.Entries, e)
		}
		return nil
	})
	return t, err
}

// str returns v as a string: a copy, or with alias the bytes of v themselves.
func str(v []byte, alias bool) string {
	if alias && len(v) > 0 {
		return unsafe.String(unsafe.SliceData(v), len(v))
	}
	return string(v)
}

// fields calls f with the number, type and value of each field of a message:
// the payload of a length-delimited field, the raw bytes of any other.
func fields(b []byte, f func(protowire.Number, protowire.Type, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		if typ == protowire.BytesType {
			var m int
			v, m = protowire.ConsumeBytes(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			n = m
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			v = b[:n]
		}
		if err := f(num, typ, v); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
