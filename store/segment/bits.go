package segment

import "math/bits"

// Bits is a set of groups. A nil Bits with All set means every group.
type Bits struct {
	All bool
	W   []uint64
}

// NewBits is an empty set of n groups.
func NewBits(n int) Bits { return Bits{W: make([]uint64, (n+63)/64)} }

// Has says whether group g is in the set.
func (b Bits) Has(g int) bool { return b.All || b.W[g/64]&(1<<(g%64)) != 0 }

// Set adds group g to the set.
func (b Bits) Set(g uint32) { b.W[g/64] |= 1 << (g % 64) }

// Each calls fn for every group in the set, in order, up to n groups.
func (b Bits) Each(n int, fn func(g int)) {
	if b.All {
		for g := 0; g < n; g++ {
			fn(g)
		}
		return
	}
	for i, w := range b.W {
		for w != 0 {
			g := i*64 + bits.TrailingZeros64(w)
			if g >= n {
				return
			}
			fn(g)
			w &= w - 1
		}
	}
}

// And is the intersection of b and o; it may reuse b's words.
func (b Bits) And(o Bits) Bits {
	switch {
	case b.All:
		return o
	case o.All:
		return b
	}
	for i := range b.W {
		b.W[i] &= o.W[i]
	}
	return b
}
