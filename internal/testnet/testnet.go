// Package testnet names the network namespaces and interfaces that tests
// create. Names drawn at random from 16 bits met now and then when two test
// runs overlapped (two `make test` at once: dozens of namespaces each), and
// `ip netns add` of a name in use fails; a name made of the process's pid
// and a counter is unique among the processes alive.
package testnet

import (
	"fmt"
	"os"
	"sync/atomic"
)

var seq atomic.Uint32

// Prefix is tag, this process's pid and a counter, in hex: at most
// len(tag)+8 characters ("fm" + 6 + 2), so that an interface named
// Prefix("fm")+"a0" stays within the kernel's 15 (IFNAMSIZ-1).
func Prefix(tag string) string {
	return fmt.Sprintf("%s%x%02x", tag, os.Getpid(), seq.Add(1)&0xff)
}
