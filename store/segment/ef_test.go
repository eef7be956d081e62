package segment

import (
	"math/rand"
	"slices"
	"testing"
)

// Group lists of every density round-trip exactly, take the size the
// format says, and any change to their bytes is either refused or still a
// strictly ascending list below u.
func TestGroupListRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, u := range []uint32{1, 2, 3, 7, 64, 1000, 65536, 1 << 20} {
		for _, n := range []int{0, 1, 2, 3, 10, 100, 1000, 65536} {
			if n > int(u) {
				continue
			}
			set := map[uint32]bool{}
			for len(set) < n {
				set[uint32(rng.Int63n(int64(u)))] = true
			}
			l := make([]uint32, 0, n)
			for g := range set {
				l = append(l, g)
			}
			slices.Sort(l)
			b := appendGroups([]byte{0xAA}, l, u)[1:]
			lo, hi := efSizes(uint64(n), uint64(u), efWidth(uint64(n), uint64(u)))
			var got []uint32
			k := decodeGroups(append(b, 0xFF), u, func(g uint32) { got = append(got, g) })
			if k != len(b) || !slices.Equal(got, l) || uint64(len(b)) > 3+lo+hi {
				t.Fatalf("u %d n %d: took %d of %d bytes, %d groups back, equal %v", u, n, k, len(b), len(got), slices.Equal(got, l))
			}
			if n > 0 && u >= 1000 {
				// At most 2 + log2(u/n) bits a group, plus a word.
				if bits := float64(8 * len(b)); bits > float64(n)*(2+log2(float64(u)/float64(n)))+64 {
					t.Fatalf("u %d n %d: %d bytes, more than Elias-Fano's bound", u, n, len(b))
				}
			}
			for i := 0; i < 50 && len(b) > 0; i++ {
				c := slices.Clone(b)
				c[rng.Intn(len(c))] ^= byte(1 << rng.Intn(8))
				checkList(t, c, u)
			}
		}
	}
}

func log2(x float64) float64 {
	n := 0.0
	for x >= 2 {
		x /= 2
		n++
	}
	return n + (x - 1) // within a bit: enough for the bound
}

// checkList: decodeGroups refuses p, or everything it hands out ascends
// strictly below u, it took no more than p, and the groups round-trip.
func checkList(t *testing.T, p []byte, u uint32) {
	t.Helper()
	var got []uint32
	k := decodeGroups(p, u, func(g uint32) { got = append(got, g) })
	if k < 0 {
		return
	}
	if k > len(p) {
		t.Fatalf("took %d of %d bytes", k, len(p))
	}
	for i, g := range got {
		if g >= u || i > 0 && g <= got[i-1] {
			t.Fatalf("accepted a list out of order or range: %v", got)
		}
	}
	var again []uint32
	if decodeGroups(appendGroups(nil, got, u), u, func(g uint32) { again = append(again, g) }) < 0 || !slices.Equal(again, got) {
		t.Fatalf("groups %v do not round-trip", got)
	}
}

func FuzzGroupList(f *testing.F) {
	f.Add([]byte{3, 0x12, 0x34, 0x56, 0x78, 0x9a}, uint32(1000))
	f.Add(appendGroups(nil, []uint32{0, 5, 9, 200, 999}, 1000), uint32(1000))
	f.Add(appendGroups(nil, []uint32{1, 2, 3}, 4), uint32(4))
	f.Fuzz(func(t *testing.T, p []byte, u uint32) {
		checkList(t, p, max(u, 1))
	})
}
