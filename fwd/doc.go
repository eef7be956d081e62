// Package fwd is the Layer-3 bump in the wire that the fwd command runs
// (cmd/fwd): it owns its ports, answers ARP and ping for its own
// addresses, forwards packets by a 1-1 rule table (rewriting addresses,
// see rewrite.go) and puts a copy of what it forwards into the capture
// ring. datapath.go explains the per-packet pipeline, afpacket.go and
// dpdk.go the two backends, run.go the wiring, config.go the file,
// writeback.go how fmctl's rule edits reach the file (hand edits made
// meanwhile are kept; an edit that clashes with one is refused), and
// portlock.go why a second fwd on a device refuses to start.
package fwd
