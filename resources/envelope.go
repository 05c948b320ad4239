package resources

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	yaml3 "go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// A file whose top level is one object without "@type" (or whose "@type" is
// DiscoveryResponse's) is not a resource: it is
// either a DiscoveryResponse, as Envoy reads from a file (a path config source),
// whose resources are read as they are, or a client's bootstrap, which is
// refused with what it is.

// BootstrapError refuses a file that holds an Envoy or gRPC bootstrap, a client's
// own configuration, rather than resources.
type BootstrapError struct {
	// Fields are the bootstrap fields found at the top level of the file.
	Fields []string
	// Client is set for a bootstrap that gets its configuration from a server
	// (dynamic_resources, a config source that names a server, or a gRPC
	// bootstrap's xds_servers): the bootstrap of a client of a server such as
	// this one. A config directory skips it, so that it can sit beside the
	// resources it is served.
	Client bool
}

func (e *BootstrapError) Error() string {
	fields := strings.Join(e.Fields, ", ")
	switch {
	case slices.Contains(e.Fields, "xds_servers"):
		return fmt.Sprintf("a gRPC xDS bootstrap (top-level %s), not resources: it tells a client where to connect", fields)
	case e.Client:
		return fmt.Sprintf("an Envoy bootstrap (top-level %s), not resources: it tells Envoy where to fetch its config", fields)
	}
	return fmt.Sprintf("an Envoy static config (top-level %s), not resources: Envoy reads it itself and asks no server; "+
		`to serve its listeners and clusters, write each as a resource with its "@type" (docs/config.md)`, fields)
}

// bootstrapFields returns the top-level fields of an Envoy or gRPC bootstrap
// that no resource has at its top level.
func bootstrapFields() []string {
	return []string{"node", "static_resources", "dynamic_resources", "admin", "xds_servers", "layered_runtime", "cluster_manager"}
}

// discoveryResponse returns the message a path config source's file holds.
func discoveryResponse() protoreflect.MessageDescriptor {
	return (&discoveryv3.DiscoveryResponse{}).ProtoReflect().Descriptor()
}

// envelope looks at a file that is one object without "@type", or whose
// "@type" is DiscoveryResponse's. For a DiscoveryResponse it returns its resources, each with its place in the file
// (top is the file's YAML node, nil for JSON), and the type_url they must have
// ("" when it gives none); for a bootstrap, a *BootstrapError. It returns the
// item itself, as one resource, for anything else: decoding then says what is
// wrong with it.
func envelope(it item, top *yaml3.Node) (items []item, typeURL string, err error) {
	// The top-level fields only: a file of one large resource pays a scan.
	var keys []jsonEntry
	for _, e := range jsonEntriesTo(it.json, 1) {
		if len(e.path) == 1 {
			keys = append(keys, e)
		}
	}
	has := func(name string) (jsonEntry, bool) {
		for _, e := range keys {
			if sameField(e.path[0], name) {
				return e, true
			}
		}
		return jsonEntry{}, false
	}
	if e, ok := has("@type"); ok {
		// A resource, unless it says it is a DiscoveryResponse.
		var t string
		_ = json.Unmarshal(it.json[e.valOff:e.valEnd], &t)
		if t != typeURLPrefix+string(discoveryResponse().FullName()) {
			return []item{it}, "", nil
		}
	}
	var boot BootstrapError
	for _, f := range bootstrapFields() {
		if _, ok := has(f); ok {
			boot.Fields = append(boot.Fields, f)
			boot.Client = boot.Client || f == "dynamic_resources" || f == "xds_servers"
		}
	}
	if len(boot.Fields) > 0 {
		// A static listener may still fetch its routes from a server (an HTTP
		// connection manager's rds.config_source): such a config source
		// anywhere makes it a client's.
		for _, e := range jsonEntries(it.json) {
			if !boot.Client && len(e.path) > 1 && (sameField(e.path[len(e.path)-1], "api_config_source") || sameField(e.path[len(e.path)-1], "ads")) {
				boot.Client = true
			}
		}
		return nil, "", &boot
	}
	res, ok := has("resources")
	if !ok {
		return []item{it}, "", nil
	}
	// A DiscoveryResponse: every field must be one of its own, as Envoy requires.
	for _, e := range keys {
		if e.path[0] != "@type" && fieldNamed(discoveryResponse(), e.path[0]) == nil {
			msg := fmt.Sprintf("unknown field %q of a DiscoveryResponse (a file with version_info and resources)", e.path[0])
			if s := suggestField(discoveryResponse(), e.path[0]); s != "" {
				msg += fmt.Sprintf(", did you mean %q?", s)
			}
			return nil, "", &placedError{path: e.path, msg: msg}
		}
	}
	if e, ok := has("type_url"); ok {
		_ = json.Unmarshal(it.json[e.valOff:e.valEnd], &typeURL)
	}
	raw := it.json[res.valOff:res.valEnd]
	if string(raw) == "null" {
		return nil, typeURL, nil
	}
	if raw[0] != '[' {
		return nil, "", &placedError{path: res.path, msg: `"resources" of a DiscoveryResponse: want a list`}
	}
	items, err = splitJSON(raw)
	if err != nil {
		return nil, "", err
	}
	var nodes []*yaml3.Node
	if top != nil {
		if n, _ := yamlFind(top, res.path); n != nil {
			for i := 0; i+1 < len(top.Content); i += 2 {
				if top.Content[i] == n && top.Content[i+1].Kind == yaml3.SequenceNode {
					nodes = top.Content[i+1].Content
				}
			}
		}
	}
	for i := range items {
		items[i].offset += it.offset + res.valOff
		if len(nodes) == len(items) {
			items[i].node = nodes[i]
			items[i].line, items[i].col = nodes[i].Line, nodes[i].Column
		}
	}
	return items, typeURL, nil
}

// placedError is an error about the field at path of the JSON text it was found
// in, which the caller places in the file.
type placedError struct {
	path []string
	msg  string
}

func (e *placedError) Error() string { return e.msg }
