package admin

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

func entryOf(t *testing.T, m proto.Message) *store.Entry {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	require.NoError(t, err)
	return &store.Entry{Name: "s", TypeURL: protocol.TypeSecret, Body: b}
}

// A secret's private key never leaves the server through debug output or CSDS;
// its certificate does, and a key that names a file is kept (it is a path).
func TestRedactSecret(t *testing.T) {
	s := xdstest.Secret("server")
	m, err := displayMessage(entryOf(t, s))
	require.NoError(t, err)
	got := m.(*tlsv3.Secret).GetTlsCertificate()
	assert.Equal(t, redacted, got.GetPrivateKey().GetInlineString())
	assert.Empty(t, got.GetPrivateKey().GetInlineBytes())
	out, err := protojson.Marshal(m)
	require.NoError(t, err)
	assert.Contains(t, string(out), redacted)
	assert.Equal(t, s.GetTlsCertificate().GetCertificateChain().GetInlineBytes(), got.GetCertificateChain().GetInlineBytes())

	a, err := displayAny(entryOf(t, s))
	require.NoError(t, err)
	assert.False(t, strings.Contains(string(a.GetValue()), "PRIVATE KEY"))

	fromFile := &tlsv3.Secret{Name: "f", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		PrivateKey: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/etc/tls/key.pem"}},
	}}}
	m, err = displayMessage(entryOf(t, fromFile))
	require.NoError(t, err)
	assert.Equal(t, "/etc/tls/key.pem", m.(*tlsv3.Secret).GetTlsCertificate().GetPrivateKey().GetFilename())
}
