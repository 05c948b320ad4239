package source_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/stream"
)

// The files directly in a config directory are the scope a stream.Server
// serves a node whose own scope holds nothing.
func TestDefaultScopeIsTheServersDefault(t *testing.T) {
	assert.Equal(t, stream.DefaultScope, source.DefaultScope)
}
