// Package resources knows the Envoy resources leanxds serves as typed messages:
// which Go type each served type URL decodes to, whether a resource is fit to be
// served, which other resources it refers to, and how to read resources from files.
//
// The parts:
//
//   - registry.go maps the served type URLs (protocol.Type*) to their generated Go
//     types: NewMessage, Decode, DecodeAny, TypeURLOf, and NameOf, the name a
//     resource carries in its own fields; and defines Resource, a named resource
//     of a served type, and Check.
//   - extensions.go links in the extension types (filters, transport sockets,
//     protocol options) that resources carry in Any fields, so that protojson can
//     read them and Validate can check them.
//   - validate.go checks a resource before it is served (Validate): the
//     constraints Envoy's protos declare, as their generated ValidateAll methods
//     check them, applied also to every Any payload nested in the resource, which
//     ValidateAll does not enter; envoychecks.go adds what Envoy refuses beyond
//     them (regexes RE2 does not compile, virtual hosts sharing a name or a
//     domain). A client NACKs what breaks them, so it is cheaper to refuse such
//     a resource at commit with a precise field path than to find it in a NACK
//     from every client. A resource is validated once: Parse and Load
//     return Resources that say so (Resource.Validated), as Check does for a
//     program that builds its own, and the store does not validate those again
//     (store.SetResource); it validates the raw messages it is given, and only
//     those whose content changed. A validated resource also carries its
//     deterministic encoding (Resource.Encoded), made once, which the store
//     compares with what it holds instead of encoding the message again.
//   - refs.go finds what a resource refers to (References): the routes a listener
//     fetches, the clusters routes send to, the EDS names of clusters, the SDS
//     secrets of TLS contexts, the ECDS filter configs. Streams use this to push
//     what is referred to before what refers to it and to remove it only after
//     (R15), and to answer the subscriptions a new listener or cluster triggers
//     (R16). ServedReferences leaves out the names a client fetches from
//     another source (a file, another api_config_source): what the server itself
//     must hold, which `leanxds serve` requires a config directory to define.
//     ReferencesAndServed gives both from one walk: the store works them out
//     once, when a resource is committed, and keeps them in its entries, where
//     streams and a config source's check of dangling references
//     (store.View.Dangling) read them.
//   - load.go and items.go read resource files (Load, Parse) in YAML or JSON,
//     written as in Envoy's docs; envelope.go reads a file in Envoy's file-based
//     xDS format (a DiscoveryResponse) and refuses a client's bootstrap
//     (BootstrapError). Errors name the file, the line and column of the field
//     at fault, the resource and the field: position.go finds the field's place
//     in the file from protojson's position or Validate's field path, and
//     suggest.go the field a misspelt one was meant to be.
//
// Rule ids (R15, ...) refer to the project's rule list, conformance/RULES.md.
package resources
