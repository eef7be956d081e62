// Command gen writes a synthetic but realistic capture for the benchmarks: a
// pcap (nanosecond) of many TCP and UDP flows between hosts of 198.18.0.0/15.
//
// The mix, per packet: 40% pure ACKs (66 bytes); 45% full-size TCP segments
// (1514 bytes) whose payload is half encrypted-looking (random) and half
// text (HTTP/JSON-like lines with varying numbers); 15% UDP of 80 to 400
// bytes (DNS-like). With -mix imix, the simple IMIX proportions instead
// (7:4:1 of 66-byte ACKs, 590-byte and 1514-byte TCP segments, payloads as
// above): more, smaller packets for the same bytes; with -mix small, 60 %
// ACKs and 40 % UDP (no segments), as DNS-heavy or control traffic. With -payload random or
// text, every segment's payload is of that kind (the writer's two extremes
// of compressibility) instead of half each. Times advance evenly over
// --duration with a little jitter. With -burst N, flows send trains of
// 1 to 2N-1 packets back to back (as TCP windows do) instead of every
// packet picking a flow at random. The same --seed gives the same file.
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"time"

	"github.com/fmcap/fmcap/store/chunk"
)

func main() {
	out := flag.String("o", "bench.pcap", "output file")
	n := flag.Int("n", 1_000_000, "packets")
	dur := flag.Duration("duration", time.Minute, "time the capture spans")
	flows := flag.Int("flows", 5000, "concurrent flows")
	seed := flag.Int64("seed", 1, "random seed")
	start := flag.Int64("start", 1767225600, "Unix time of the first packet")
	mix := flag.String("mix", "web", "packet mix: web (see above), imix or small")
	payload := flag.String("payload", "mixed", "segment payloads: mixed (half random, half text), random or text")
	burst := flag.Int("burst", 1, "mean packets a flow sends back to back (1: every packet picks a flow at random)")
	flag.Parse()
	if *flows < 1 || *flows > 1<<16+1<<15 {
		fmt.Fprintln(os.Stderr, "gen: -flows: 1 to 98304 (one source address each)")
		os.Exit(2)
	}
	if *mix != "web" && *mix != "imix" && *mix != "small" {
		fmt.Fprintf(os.Stderr, "gen: -mix %q: use web, imix or small\n", *mix)
		os.Exit(2)
	}
	if *payload != "mixed" && *payload != "random" && *payload != "text" {
		fmt.Fprintf(os.Stderr, "gen: -payload %q: use mixed, random or text\n", *payload)
		os.Exit(2)
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.Write(chunk.PcapHeader())
	rng := rand.New(rand.NewSource(*seed))
	text := []byte("GET /api/v1/items?id=%d HTTP/1.1\r\nHost: svc%d.example\r\nUser-Agent: fmcap-bench\r\nAccept: application/json\r\n\r\n" +
		`{"id":%d,"name":"item-%d","price":%d.%02d,"tags":["a","b"],"ok":true}` + "\n")
	pkt := make([]byte, 1514)
	step := int64(*dur) / int64(*n)
	ts := *start * 1e9
	var buf []byte
	fl, left := 0, 0
	for i := 0; i < *n; i++ {
		if *burst <= 1 {
			fl = rng.Intn(*flows)
		} else if left == 0 { // a train of 1..2*burst-1 packets of one flow
			fl, left = rng.Intn(*flows), 1+rng.Intn(2**burst-1)
		}
		left--
		src := [4]byte{198, 18, byte(fl >> 8), byte(fl)}
		if fl >= 1<<16 { // one address per flow up to 98 304 flows; dst stays in 198.19.0-6.x
			src = [4]byte{198, 19, byte(128 + (fl-1<<16)>>8), byte(fl)}
		}
		dst := [4]byte{198, 19, byte(fl % 7), byte(10 + fl%200)}
		sport, dport := uint16(10000+fl%50000), []uint16{443, 80, 8443, 5432, 6379}[fl%5]
		var l int
		proto := byte(6)
		r := rng.Intn(100)
		if *mix == "imix" { // 7:4:1 as ACK : 590 : 1514, on the same scale
			switch r = rng.Intn(12); {
			case r < 7:
				r = 0
			case r < 11:
				r, l = 50, 590
			default:
				r, l = 50, 1514
			}
		} else if *mix == "small" {
			if r >= 60 {
				r = 85 // UDP
			} else {
				r = 0
			}
		} else if r >= 40 && r < 85 {
			l = 1514
		}
		switch {
		case r < 40:
			l = 66
		case r < 85:
			p := pkt[66:l]
			if coin := rng.Intn(2); *payload == "random" || *payload == "mixed" && coin == 0 {
				rng.Read(p)
			} else {
				s := []byte(fmt.Sprintf(string(text), rng.Intn(1e6), fl%50, rng.Intn(1e6), rng.Intn(1e5), rng.Intn(1e4), rng.Intn(100)))
				for k := 0; k < len(p); k += len(s) {
					copy(p[k:], s)
				}
			}
		default:
			proto = 17
			l = 80 + rng.Intn(320)
			dport = 53
			rng.Read(pkt[42:l])
		}
		ether(pkt, src, dst, proto, l, sport, dport, uint32(i))
		ts += step + int64(rng.Intn(int(step/4+1))) - step/8
		buf, _ = chunk.AppendPacket(buf[:0], ts, uint32(l), pkt[:l])
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	f.Close()
}

func ether(p []byte, src, dst [4]byte, proto byte, l int, sport, dport uint16, seq uint32) {
	be := binary.BigEndian
	copy(p[0:], []byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 8, 0})
	p[14], p[15] = 0x45, 0
	be.PutUint16(p[16:], uint16(l-14))
	be.PutUint16(p[18:], uint16(seq))
	be.PutUint16(p[20:], 0x4000)
	p[22], p[23] = 64, proto
	be.PutUint16(p[24:], 0)
	copy(p[26:], src[:])
	copy(p[30:], dst[:])
	be.PutUint16(p[34:], sport)
	be.PutUint16(p[36:], dport)
	if proto == 6 {
		be.PutUint32(p[38:], seq*1448)
		be.PutUint32(p[42:], seq)
		p[46], p[47] = 0x80, 0x10
		be.PutUint16(p[48:], 512)
		be.PutUint32(p[50:], 0)
		copy(p[54:66], []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2})
	} else {
		be.PutUint16(p[38:], uint16(l-34))
		be.PutUint16(p[40:], 0)
	}
}
