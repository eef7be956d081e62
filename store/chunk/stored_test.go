package chunk

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"os/exec"
	"testing"
)

// TestAppendStored: frames of raw blocks, at sizes around the block size,
// decode to their content by this package's decoder and by the zstd
// command (when installed), with the checksum each verifies, and take
// StoredSize bytes.
func TestAppendStored(t *testing.T) {
	dec := NewDecoder()
	defer dec.Close()
	rng := rand.New(rand.NewSource(1))
	for _, n := range []int{0, 1, 1000, storedBlockMax - 1, storedBlockMax, storedBlockMax + 1, 3*storedBlockMax + 17, 1 << 20} {
		src := make([]byte, n)
		rng.Read(src)
		pre := []byte("prefix")
		b, sum := AppendStored(append([]byte{}, pre...), src)
		if !bytes.Equal(b[:len(pre)], pre) {
			t.Fatalf("n=%d: dst's bytes changed", n)
		}
		b = b[len(pre):]
		if len(b) != StoredSize(n) {
			t.Errorf("n=%d: %d bytes, StoredSize says %d", n, len(b), StoredSize(n))
		}
		if sum != Sum(src) {
			t.Errorf("n=%d: checksum %x, want %x", n, sum, Sum(src))
		}
		got, err := dec.DecodeAll(b, nil)
		if err != nil || !bytes.Equal(got, src) {
			t.Fatalf("n=%d: decoded %d bytes (err %v), want %d", n, len(got), err, n)
		}
		if _, err := exec.LookPath("zstd"); err == nil {
			cmd := exec.Command("zstd", "-dc")
			cmd.Stdin = bytes.NewReader(b)
			out, err := cmd.Output()
			if err != nil || !bytes.Equal(out, src) {
				t.Fatalf("n=%d: zstd -dc gave %d bytes (err %v), want %d", n, len(out), err, n)
			}
		}
		// A flipped content byte fails the frame's checksum.
		if n > 0 {
			b[storedHdrSize+storedBlockHdr] ^= 1
			if _, err := dec.DecodeAll(b, nil); err == nil {
				t.Errorf("n=%d: damaged frame decoded without error", n)
			}
		}
	}
}

func BenchmarkAppendStored(b *testing.B) {
	src := make([]byte, 32<<10)
	rand.New(rand.NewSource(1)).Read(src)
	dst := make([]byte, 0, StoredSize(len(src)))
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		dst, _ = AppendStored(dst[:0], src)
	}
}

// TestScanStoredFrames: the last-resort scan of a chunk whose tables are
// lost walks frames of raw blocks (one block, several, an empty one) as it
// walks compressed ones.
func TestScanStoredFrames(t *testing.T) {
	var file []byte
	var want []int
	for _, n := range []int{100, 3*storedBlockMax + 5, 0} {
		start := len(file)
		file, _ = AppendStored(file, make([]byte, n))
		want = append(want, len(file)-start, n)
	}
	file = binary.LittleEndian.AppendUint32(file, skipFtab) // where the tables would start
	file = binary.LittleEndian.AppendUint32(file, 0)
	got, err := scanFrames(bytes.NewReader(file), int64(len(file)))
	if err != nil || len(got) != 3 {
		t.Fatalf("scan: %d frames, err %v; want 3", len(got), err)
	}
	for i, f := range got {
		if int(f.CSize) != want[2*i] || int(f.DSize) != want[2*i+1] {
			t.Errorf("frame %d: %d bytes holding %d, want %d holding %d", i, f.CSize, f.DSize, want[2*i], want[2*i+1])
		}
	}
}
