// Package protocol is the wire vocabulary of leanxds: the type URLs it serves and
// what the xDS protocol says of each (full-state or incremental SotW responses,
// place in the push order), content versions and digests, and nonces. It holds no
// state.
//
// Rule ids (R15, S1, ...) refer to the project's rule list, conformance/RULES.md
// (generated from conformance/rules.go): the numbered server-side rules of the
// xDS protocol that leanxds implements.
package protocol
