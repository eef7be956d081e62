// Command gwlbload offers a GWLB appliance GENEVE traffic as fast as one
// core sends it and counts what comes back, for bench/gwlb.sh: it measures
// the appliance (fwd, or gwlbtun as the peer), not a GWLB.
//
// It sends, with sendmmsg in batches of 64 from LOCAL:6081 to
// APPLIANCE:6081, GENEVE datagrams with GWLB's three options around inner
// IPv4 TCP packets of a traffic mix (small: 64-byte inner packets; imix:
// 64, 576 and 1500 bytes as 7:4:1; large: 1500), over FLOWS flows (each its
// own 5-tuple and flow cookie), for DURATION; a second goroutine counts the
// datagrams that come back to LOCAL:6081 with recvmmsg and checks that
// each is one that was sent (same GENEVE header and options, same inner
// packet). Output, one line: "sent N returned N bad N seconds S".
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const batch = 64

func main() {
	local := flag.String("local", "198.18.1.1", "this end's IPv4 address (GWLB's)")
	appliance := flag.String("appliance", "198.18.1.2", "the appliance's IPv4 address")
	mix := flag.String("mix", "small", "inner packet sizes: small, imix or large")
	flows := flag.Int("flows", 256, "flows (distinct inner 5-tuples and cookies)")
	dur := flag.Duration("duration", 5*time.Second, "how long to send")
	flag.Parse()
	sizes := map[string][]int{"small": {64}, "imix": {64, 64, 64, 64, 64, 64, 64, 576, 576, 576, 576, 1500}, "large": {1500}}[*mix]
	if sizes == nil || *flows < 1 {
		fmt.Fprintln(os.Stderr, "gwlbload: -mix small|imix|large, -flows ≥ 1")
		os.Exit(2)
	}
	src, dst := net.ParseIP(*local).To4(), net.ParseIP(*appliance).To4()
	if src == nil || dst == nil {
		fmt.Fprintln(os.Stderr, "gwlbload: -local and -appliance are IPv4 addresses")
		os.Exit(2)
	}
	// The datagrams: one per (flow, size), sent round robin.
	var dgrams [][]byte
	for f := 0; f < *flows; f++ {
		for _, s := range sizes {
			dgrams = append(dgrams, datagram(f, s-14))
		}
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	check(err)
	check(unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1))
	check(unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20))
	check(unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20))
	check(unix.Bind(fd, &unix.SockaddrInet4{Port: 6081, Addr: [4]byte(src)}))
	check(unix.Connect(fd, &unix.SockaddrInet4{Port: 6081, Addr: [4]byte(dst)}))

	want := map[string]bool{}
	for _, d := range dgrams {
		want[string(d)] = true
	}
	var returned, bad atomic.Uint64
	var stop atomic.Bool
	done := make(chan struct{})
	go func() { // receiver
		defer close(done)
		bufs := make([][]byte, batch)
		iov := make([]unix.Iovec, batch)
		msgs := make([]mmsghdr, batch)
		for i := range bufs {
			bufs[i] = make([]byte, 9216)
			iov[i].Base = &bufs[i][0]
			iov[i].SetLen(len(bufs[i]))
			msgs[i].hdr.Iov = &iov[i]
			msgs[i].hdr.Iovlen = 1
		}
		tv := unix.Timeval{Usec: 100000}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		idle := 0
		for idle < 10 || !stop.Load() {
			n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), batch, 0, 0, 0)
			if e != 0 {
				if stop.Load() {
					idle++
				}
				continue
			}
			idle = 0
			for i := 0; i < int(n); i++ {
				if !want[string(bufs[i][:msgs[i].len])] {
					bad.Add(1)
				}
			}
			returned.Add(uint64(n))
		}
	}()

	msgs := make([]mmsghdr, batch)
	iov := make([]unix.Iovec, batch)
	var sent uint64
	start := time.Now()
	for k := 0; time.Since(start) < *dur; {
		for i := range msgs {
			d := dgrams[k%len(dgrams)]
			k++
			iov[i].Base = &d[0]
			iov[i].SetLen(len(d))
			msgs[i].hdr.Iov = &iov[i]
			msgs[i].hdr.Iovlen = 1
		}
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), batch, 0, 0, 0)
		if e == 0 {
			sent += uint64(n)
		}
	}
	secs := time.Since(start).Seconds()
	stop.Store(true)
	<-done
	fmt.Printf("sent %d returned %d bad %d seconds %.3f\n", sent, returned.Load(), bad.Load(), secs)
}

// mmsghdr is struct mmsghdr (the kernel's: a msghdr and the length).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// datagram is a GWLB GENEVE payload for flow f around an inner IPv4 TCP
// packet of n bytes (n ≥ 40).
func datagram(f, n int) []byte {
	be := binary.BigEndian
	opt := func(typ byte, data []byte) []byte {
		return append([]byte{0x01, 0x08, typ, byte(len(data) / 4)}, data...)
	}
	var o []byte
	o = append(o, opt(1, be.AppendUint64(nil, 0x0123456789abcdef))...)
	o = append(o, opt(2, be.AppendUint64(nil, 0xfedcba9876543210))...)
	o = append(o, opt(3, be.AppendUint32(nil, 0x5eed0000+uint32(f)))...)
	g := append([]byte{byte(len(o) / 4), 0, 0x08, 0x00, 0, 0, 0, 0}, o...)
	ip := make([]byte, n)
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	be.PutUint16(ip[2:], uint16(n))
	copy(ip[12:], []byte{198, 18, 0, 2, 198, 18, 2, 2})
	be.PutUint16(ip[20:], uint16(10000+f%50000))
	be.PutUint16(ip[22:], 443)
	ip[32] = 5 << 4
	ip[33] = 0x10
	for i := 40; i < n; i++ {
		ip[i] = byte(i * 7)
	}
	var s uint32
	for i := 0; i < 20; i += 2 {
		s += uint32(be.Uint16(ip[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	be.PutUint16(ip[10:], ^uint16(s))
	return append(g, ip...)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "gwlbload:", err)
		os.Exit(1)
	}
}
