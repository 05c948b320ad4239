package protocol

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
)

// ContentVersion returns the version of a resource: a hash of its deterministic
// encoding. It depends on the bytes alone, so the same content has the same
// version in every process and across restarts (S3, D8).
func ContentVersion(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:8])
}

// Digest summarises a set of (name, content version) pairs. The digest of a set is
// the XOR of its members' digests, so adding, removing or changing one member costs
// O(1) and the result does not depend on order. Two sets with equal digests hold the
// same content (up to a 2^-64 chance of collision).
type Digest uint64

// EntryDigest is the digest of one named resource at one content version.
func EntryDigest(name, version string) Digest {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(version))
	var sum [sha256.Size]byte
	return Digest(binary.BigEndian.Uint64(h.Sum(sum[:0])))
}

// Version formats a digest as a 16-hex-digit version_info string.
func (d Digest) Version() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(d))
	return hex.EncodeToString(b[:])
}

// FormatNonce encodes a stream's response counter as a nonce (R1: unique within the
// stream, meaningless outside it).
func FormatNonce(n uint64) string { return strconv.FormatUint(n, 36) }

// ParseNonce decodes a nonce made by FormatNonce; ok is false for any other string
// (a nonce from another stream or another server, or garbage).
func ParseNonce(s string) (n uint64, ok bool) {
	if s == "" || len(s) > 13 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 36, 64)
	return n, err == nil
}
