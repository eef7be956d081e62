// Command fwdverify checks the capture copies of a `fwd --bench-gen` run:
// it reads every record of the ring through a consumer and checks that the
// sequence is unbroken, that each record is the rule's egress copy, and
// that every copy is byte-identical to the first, whose addresses, TTL and
// checksums it checks from scratch.
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"

	"github.com/fmcap/fmcap/shmring"
)

func main() {
	ring := flag.String("ring", "", "ring file")
	consumer := flag.String("consumer", "verify", "consumer slot")
	want := flag.Uint64("n", 0, "records expected")
	src := flag.String("src", "198.18.2.1", "expected source address")
	dst := flag.String("dst", "198.18.2.2", "expected destination address")
	flag.Parse()
	if err := verify(*ring, *consumer, *want, net.ParseIP(*src).To4(), net.ParseIP(*dst).To4()); err != nil {
		fmt.Fprintln(os.Stderr, "fwdverify:", err)
		os.Exit(1)
	}
}

func verify(path, name string, want uint64, src, dst net.IP) error {
	r, err := shmring.Open(path)
	if err != nil {
		return err
	}
	c, err := r.Attach(name)
	if err != nil {
		return err
	}
	var first []byte
	var n, seq uint64
	for {
		rec, err := c.Next()
		if errors.Is(err, shmring.ErrEmpty) {
			break
		}
		if err != nil {
			return err
		}
		if n == 0 {
			seq = rec.Seq
			first = append([]byte(nil), rec.Data...)
			if err := checkFrame(first, src, dst); err != nil {
				return fmt.Errorf("record %d: %w", rec.Seq, err)
			}
		}
		if rec.Seq != seq+n {
			return fmt.Errorf("record %d: seq %d, want %d", n, rec.Seq, seq+n)
		}
		if rec.Dir != shmring.DirEgress || rec.Rule != 1 || rec.Port != 1 || !bytes.Equal(rec.Data, first) {
			return fmt.Errorf("record %d: dir %d rule %d port %d, data %x", rec.Seq, rec.Dir, rec.Rule, rec.Port, rec.Data)
		}
		n++
	}
	c.Commit()
	if n != want {
		return fmt.Errorf("%d records, want %d", n, want)
	}
	fmt.Printf("verified %d capture copies: seq %d..%d unbroken, each the egress frame %s → %s\n", n, seq, seq+n-1, src, dst)
	return nil
}

func sum(b []byte, s uint32) uint16 {
	for ; len(b) >= 2; b = b[2:] {
		s += uint32(binary.BigEndian.Uint16(b))
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s>>16 != 0 {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

func checkFrame(f []byte, src, dst net.IP) error {
	if len(f) != 64 || f[12] != 8 || f[13] != 0 {
		return fmt.Errorf("not the 64-byte IPv4 frame: %x", f)
	}
	ip := f[14:34]
	if !net.IP(ip[12:16]).Equal(src) || !net.IP(ip[16:20]).Equal(dst) || ip[8] != 63 {
		return fmt.Errorf("addresses %v → %v ttl %d", net.IP(ip[12:16]), net.IP(ip[16:20]), ip[8])
	}
	if sum(ip, 0) != 0 {
		return fmt.Errorf("IP checksum wrong")
	}
	tl := int(binary.BigEndian.Uint16(ip[2:])) - 20
	ps := uint32(binary.BigEndian.Uint16(ip[12:])) + uint32(binary.BigEndian.Uint16(ip[14:])) +
		uint32(binary.BigEndian.Uint16(ip[16:])) + uint32(binary.BigEndian.Uint16(ip[18:])) + 6 + uint32(tl)
	if sum(f[34:34+tl], ps) != 0 {
		return fmt.Errorf("TCP checksum wrong")
	}
	return nil
}
