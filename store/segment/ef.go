package segment

// Group lists (posting lists and each flow's groups) are stored in
// Elias-Fano form. A list of n ascending groups below u (the segment's
// group count) splits each group g into its low l bits and its high part
// g>>l, with l = floor(log2(u/n)) (0 when n ≥ u/2):
//
//	count n    uvarint
//	low bits   ceil(n*l/8) bytes: group i's low l bits at bits i*l .. i*l+l-1,
//	           least significant bit first (bit b is byte b/8, bit b%8)
//	high bits  ceil((n + (u-1)>>l) / 8) bytes: for group i, the bit at
//	           (g>>l) + i is set, and no other (unused bits are zero)
//	           (bits are numbered as in the low bits)
//
// That is about 2 + log2(u/n) bits a group: 10–12 bits for the lists of a
// flow or a client address, which took 16 as uvarint deltas (the index's
// bulk), and 2 bits or less for the dense lists of a protocol or a busy
// port, which took 8. Groups in a list are distinct, so decoding checks
// that they strictly ascend and stay below u.

import (
	"encoding/binary"
	"math/bits"
)

// efWidth is the low-bit width l for n groups below u.
func efWidth(n, u uint64) uint {
	if n == 0 || u/n < 2 {
		return 0
	}
	return uint(bits.Len64(u/n) - 1)
}

// efSizes are the byte lengths of the low and high bits.
func efSizes(n, u uint64, l uint) (low, high uint64) {
	if n == 0 {
		return 0, 0
	}
	return (n*uint64(l) + 7) / 8, (n + (u-1)>>l + 7) / 8
}

// appendGroups appends l (strictly ascending, each below u) in Elias-Fano form.
func appendGroups(out []byte, l []uint32, u uint32) []byte {
	n := uint64(len(l))
	out = binary.AppendUvarint(out, n)
	w := efWidth(n, uint64(u))
	lowN, highN := efSizes(n, uint64(u), w)
	start := len(out)
	out = append(out, make([]byte, lowN+highN)...)
	low, high := out[start:start+int(lowN)], out[start+int(lowN):]
	mask := uint32(1)<<w - 1
	for i, g := range l {
		if w > 0 {
			at := uint64(i) * uint64(w)
			v := uint64(g&mask) << (at % 8) // w + 7 ≤ 39 bits: five bytes
			for b := at / 8; v != 0; b++ {
				low[b] |= byte(v)
				v >>= 8
			}
		}
		h := uint64(g>>w) + uint64(i)
		high[h/8] |= 1 << (h % 8)
	}
	return out
}

// decodeGroups reads a list written by appendGroups at the start of p and
// hands fn its groups in order; it returns the bytes it took, or -1 if the
// list is malformed (fn may then have seen groups that must not be
// trusted).
func decodeGroups(p []byte, u uint32, fn func(g uint32)) int {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(u) {
		return -1
	}
	w := efWidth(n, uint64(u))
	lowN, highN := efSizes(n, uint64(u), w)
	if uint64(len(p)-k) < lowN+highN {
		return -1
	}
	low, high := p[k:k+int(lowN)], p[k+int(lowN):k+int(lowN+highN)]
	mask := uint64(1)<<w - 1
	i, prev := uint64(0), int64(-1)
	for wi := 0; wi < len(high) && i < n; wi += 8 {
		var word uint64
		if wi+8 <= len(high) {
			word = binary.LittleEndian.Uint64(high[wi:])
		} else {
			for j := len(high) - 1; j >= wi; j-- {
				word = word<<8 | uint64(high[j])
			}
		}
		for word != 0 && i < n {
			t := uint64(bits.TrailingZeros64(word))
			word &= word - 1
			g := (uint64(wi)*8+t-i)<<w | lowBits(low, i*uint64(w), w)&mask
			if int64(g) <= prev || g >= uint64(u) {
				return -1
			}
			prev = int64(g)
			fn(uint32(g))
			i++
		}
	}
	if i != n {
		return -1
	}
	// Bits past the last group are not looked at: the list's CRC, not its
	// decoding, is what tells damage.
	return k + int(lowN+highN)
}

// skipGroups is the bytes the list at the start of p takes (as
// decodeGroups returns them) without decoding it, or -1 if p is too short.
func skipGroups(p []byte, u uint32) int {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(u) {
		return -1
	}
	lowN, highN := efSizes(n, uint64(u), efWidth(n, uint64(u)))
	if uint64(len(p)-k) < lowN+highN {
		return -1
	}
	return k + int(lowN+highN)
}

// lowBits reads w ≤ 32 bits of p from bit at (bits past p's end read as 0).
func lowBits(p []byte, at uint64, w uint) uint64 {
	if w == 0 {
		return 0
	}
	b := at / 8
	var v uint64
	if b+8 <= uint64(len(p)) {
		v = binary.LittleEndian.Uint64(p[b:])
	} else {
		for j := uint64(len(p)); j > b; j-- {
			v = v<<8 | uint64(p[j-1])
		}
	}
	return v >> (at % 8) // w + 7 ≤ 39 bits: within the 64 read
}
