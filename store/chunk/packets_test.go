package chunk

import (
	"bytes"
	"testing"
)

// Packets says where each packet's bytes lie in the frame (fmslice hands
// libpcap offsets into the frame, not copies), in frame 0 after the pcap
// header and in later frames from the start.
func TestPacketsOff(t *testing.T) {
	for _, first := range []bool{true, false} {
		var b []byte
		if first {
			b = PcapHeader()
		}
		var want [][]byte
		for i := 0; i < 5; i++ {
			p := bytes.Repeat([]byte{byte(i + 1)}, 20+i*7)
			b, _ = AppendPacket(b, int64(i), uint32(len(p)+i), p)
			want = append(want, p)
		}
		n := 0
		err := Packets(b, first, func(p Packet) bool {
			if got := b[p.Off : p.Off+len(p.Data)]; !bytes.Equal(got, want[n]) || !bytes.Equal(p.Data, want[n]) {
				t.Errorf("first %v, packet %d: at Off %d: %x, Data %x; want %x", first, n, p.Off, got, p.Data, want[n])
			}
			n++
			return true
		})
		if err != nil || n != len(want) {
			t.Fatalf("first %v: %d packets, %v; want %d", first, n, err, len(want))
		}
	}
}
