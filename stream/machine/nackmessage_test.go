package machine

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

// A NACK's message is the client's to choose: a stream keeps at most
// MaxNACKMessageBytes of it, cut at a character boundary and marked.
func TestNACKMessageIsBounded(t *testing.T) {
	short := "cluster web: unexpected lbPolicy MAGLEV"
	assert.Equal(t, short, nackMessage(short))

	long := strings.Repeat("é", MaxNACKMessageBytes) // two bytes each: 8 KiB
	assert.Equal(t, strings.Repeat("é", MaxNACKMessageBytes/2)+"… (4096 bytes cut)", nackMessage(long))

	odd := "x" + long // the bound falls inside a character
	got := nackMessage(odd)
	assert.True(t, utf8.ValidString(got))
	assert.Equal(t, "x"+strings.Repeat("é", MaxNACKMessageBytes/2-1)+"… (4098 bytes cut)", got)
}
