//go:build !dpdk

package fwd

import "errors"

// newDPDKBackend in a build without DPDK explains how to get one.
func newDPDKBackend(eal []string, ports []Port) (backend, error) {
	return nil, errors.New("backend dpdk: this fwd was built without DPDK; build it with `make build-dpdk` (needs libdpdk-dev) or use backend: afpacket")
}
