package persist

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/leanxds/leanxds/store"
)

// Magic opens every snapshot.
const Magic = "LXDSSNAP"

// FormatVersion is the version of the snapshot layout this package writes.
// Decode reads it and version 1, which has no history and no attachments.
const FormatVersion uint32 = 2

// formatVersion1 is the first layout: the header and the content alone.
const formatVersion1 uint32 = 1

// Bounds of what a snapshot may make the server hold beside its content: a
// snapshot past one of them fails Decode (ErrBody). Encode never writes one:
// it keeps the newest MaxHistoryRevisions revisions of the history, and the
// Persister refuses attachments past the others.
const (
	// MaxAttachments bounds the number of attachments.
	MaxAttachments = 64
	// MaxAttachmentName bounds the length of an attachment's name.
	MaxAttachmentName = 256
	// MaxAttachmentBytes bounds the bytes of every attachment together.
	MaxAttachmentBytes = 16 << 20
	// MaxHistoryRevisions bounds the revisions of the history, every scope
	// together (100 per scope for 1,000 scopes).
	MaxHistoryRevisions = 100_000
	// MaxHistoryEntries bounds the entries the history's revisions hold
	// beside the content (each one a resource as an older revision held it,
	// or the name of one it did not hold).
	MaxHistoryEntries = 1_000_000
	// MaxSourceBytes bounds a revision's source label.
	MaxSourceBytes = 4096
)

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
	// writers of one location decide by it which snapshot is newer. It is the
	// writing store's revision (store.View.Revision) when that store began
	// empty or continued the numbering of the snapshot it restored
	// (Info.Numbered); a restore continues the numbering from it.
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
	// in content order. They are informational: a restore rebuilds the tables,
	// which take the revisions of the history's commits that made them.
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
	// History is the store's history of each scope (store.View.History),
	// scopes sorted by name; empty in a version 1 snapshot.
	History []ScopeHistory
	// Attachments are the named data the writer attached (Meta.Attachments);
	// nil when none.
	Attachments map[string][]byte
}

// ScopeHistory is the history of one scope in a snapshot.
type ScopeHistory struct {
	// Scope is the scope's name.
	Scope string
	// Revisions are its revisions, newest first. The first is the scope's
	// content in the snapshot (Snapshot.Scopes; empty if it is not there).
	Revisions []HistoryRevision
}

// HistoryRevision is one revision of a scope's history in a snapshot: the
// store's record of it, and its content as a difference from the next newer
// revision of the list.
type HistoryRevision struct {
	// Revision holds the record: Revision, At, Source, Resources, Summary,
	// First and Until (store.Revision; Scope is ScopeHistory.Scope).
	Revision store.Revision
	// Set are the resources this revision held that the next newer one does
	// not hold as they were, in push order then by name.
	Set []HistoryEntry
	// Absent are the resources the next newer revision holds that this one
	// did not, in push order then by name.
	Absent []HistoryName
}

// HistoryEntry is a resource as an older revision held it.
type HistoryEntry struct {
	TypeURL string
	Entry
}

// HistoryName names a resource of a type.
type HistoryName struct {
	TypeURL string
	Name    string
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
	// Attachments are named data written beside the content, such as the
	// state of a rollout (Persister.SetAttachment), at most MaxAttachments of
	// at most MaxAttachmentBytes together.
	Attachments map[string][]byte
}

// The body is protobuf wire format: field 1 the header, then field 2 once per
// scope (the content section), then (version 2) field 3 once per scope with a
// history, then field 4 once per attachment. Field numbers of each message:
const (
	bodyHeader     = 1
	bodyScope      = 2
	bodyHistory    = 3
	bodyAttachment = 4

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

	historyScope    = 1 // string
	historyRevision = 2 // message, repeated, newest first

	revRevision  = 1  // varint
	revAt        = 2  // sfixed64, Unix nanoseconds
	revSource    = 3  // string
	revResources = 4  // varint
	revAdded     = 5  // varint
	revChanged   = 6  // varint
	revRemoved   = 7  // varint
	revName      = 8  // string, repeated (Summary.Names)
	revFirst     = 9  // varint, 1 when set
	revUntil     = 10 // varint; absent when zero
	revSet       = 11 // message, repeated: type URL (1) and an entry's fields (entryName, entryVersion, entryBody shifted by 1)
	revAbsent    = 12 // message, repeated: type URL (1), name (2)

	setTypeURL = 1 // string
	setName    = 2 // string
	setVersion = 3 // string
	setBody    = 4 // bytes

	absentTypeURL = 1 // string
	absentName    = 2 // string

	attachmentName = 1 // string
	attachmentData = 2 // bytes
)
