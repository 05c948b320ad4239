package persist

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"
)

// Magic opens every snapshot.
const Magic = "LXDSSNAP"

// FormatVersion is the version of the snapshot layout this package writes and the
// only one it reads.
const FormatVersion uint32 = 1

const (
	// prefixLen is magic + format version + body length.
	prefixLen = len(Magic) + 4 + 8
	// checksumLen is the SHA-256 that closes the file.
	checksumLen = sha256.Size
	// maxBody bounds the body length a header may claim (1 TiB), so a corrupt
	// length is reported as such rather than compared against the file size.
	maxBody = 1 << 40
)

// The checks Decode runs, in order. Each error names its check; errors.Is tells
// them apart.
var (
	// ErrMagic: the data does not start with Magic; it is not a snapshot.
	ErrMagic = errors.New("magic check failed")
	// ErrFormatVersion: a snapshot of a format this binary does not read.
	ErrFormatVersion = errors.New("format version check failed")
	// ErrLength: the data is shorter (truncated) or longer than its header says.
	ErrLength = errors.New("length check failed")
	// ErrChecksum: the SHA-256 over the file does not match; the file was altered.
	ErrChecksum = errors.New("checksum check failed")
	// ErrBody: the checksum matched but the body does not parse; the writer was
	// broken or of an incompatible build.
	ErrBody = errors.New("body check failed")
)

// Header describes a snapshot: when and by whom it was written and what it holds.
type Header struct {
	// WrittenAt is when the snapshot was encoded.
	WrittenAt time.Time
	// Revision counts the commits of the snapshot's lineage: the revision of the
	// snapshot the writing store was restored from plus the commits since. Two
	// writers of one location decide by it which snapshot is newer.
	Revision uint64
	// CommittedAt is when the store's last commit before the snapshot was
	// published (zero for a store that never held anything).
	CommittedAt time.Time
	// ContentDigest is the SHA-256 of the body's content section (every scope,
	// type and entry, nothing else): equal digests, equal content, whatever the
	// time, revision or writer.
	ContentDigest [sha256.Size]byte
	// Resources is the number of entries, every scope and type.
	Resources int
	// Writer names the process that wrote the snapshot (host and pid by default).
	Writer string
	// Tables are the store revisions of each non-empty table when it was written,
	// in content order. They are informational: a restore commits the content
	// afresh and the restored store has its own revisions.
	Tables []TableRevision
}

// TableRevision is the store revision of the last commit that changed one table.
type TableRevision struct {
	// Scope and TypeURL name the table.
	Scope   string
	TypeURL string
	// Revision is store.Table.Revision when the snapshot was written.
	Revision uint64
}

// Digest returns ContentDigest in hex, for logs.
func (h Header) Digest() string { return hex.EncodeToString(h.ContentDigest[:]) }

// Snapshot is a decoded snapshot.
type Snapshot struct {
	Header
	// Scopes hold the content: scopes sorted by name, each one's tables in push
	// order, each table's entries sorted by name.
	Scopes []Scope
}

// Scope is the content of one scope in a snapshot.
type Scope struct {
	// Name is the scope's name.
	Name string
	// Tables hold its resources, one per type, in push order (R15).
	Tables []Table
}

// Table is the content of one (scope, type) in a snapshot.
type Table struct {
	// TypeURL is the type of the resources.
	TypeURL string
	// Entries are the resources, sorted by name.
	Entries []Entry
}

// Entry is one resource in a snapshot.
type Entry struct {
	// Name is the name the resource was committed under.
	Name string
	// Version is its content version when written (S3, D8).
	Version string
	// Body is its deterministic protobuf encoding. After Decode it aliases the
	// decoded data.
	Body []byte
}

// Meta is what a snapshot records beside the store's content.
type Meta struct {
	// WrittenAt is the time to record; the zero time means time.Now().
	WrittenAt time.Time
	// Revision is the lineage revision (see Header.Revision).
	Revision uint64
	// Writer names the writing process.
	Writer string
}

// The body is protobuf wire format: field 1 the header, then field 2 once per
// scope (the content section). Field numbers of each message:
const (
	bodyHeader = 1
	bodyScope  = 2

	headerWrittenAt   = 1 // sfixed64, Unix nanoseconds
	headerRevision    = 2 // fixed64
	headerCommittedAt = 3 // sfixed64, Unix nanoseconds; absent when zero
	headerDigest      = 4 // bytes, 32
	headerResources   = 5 // varint
	headerWriter      = 6 // string
	headerTable       = 7 // message TableRevision, repeated

	tableRevScope    = 1 // string
	tableRevTypeURL  = 2 // string
	tableRevRevision = 3 // varint

	scopeName  = 1 // string
	scopeTable = 2 // message, repeated

	tableTypeURL = 1 // string
	tableEntry   = 2 // message, repeated

	entryName    = 1 // string
	entryVersion = 2 // string
	entryBody    = 3 // bytes
)
