package persist

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/leanxds/leanxds/protocol"
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
	if v := binary.BigEndian.Uint32(data[len(Magic):]); v != FormatVersion {
		return nil, fmt.Errorf("%w: format version %d; this build reads version %d", ErrFormatVersion, v, FormatVersion)
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
	s, err := parseBody(data[prefixLen:end], alias)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBody, err)
	}
	return s, nil
}

// parseBody parses a body whose checksum matched.
func parseBody(b []byte, alias bool) (*Snapshot, error) {
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
	content := b[n+m:]
	if sha256.Sum256(content) != s.ContentDigest {
		return nil, errors.New("the content does not match the digest in the header")
	}
	count := 0
	var prevScope string
	err := fields(content, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != bodyScope || typ != protowire.BytesType {
			return fmt.Errorf("unexpected field %d in the content", num)
		}
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
	return s, nil
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
