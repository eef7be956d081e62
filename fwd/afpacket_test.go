package fwd

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fmcap/fmcap/internal/testnet"
)

// inNetns runs f on a thread inside a new network namespace holding a
// veth pair va–vb (both up, no addresses), and removes it afterwards.
func inNetns(t *testing.T, f func()) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace (CI runs as root)")
	}
	ns := testnet.Prefix("fmt")
	for _, c := range [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb"},
		{"ip", "-n", ns, "link", "set", "va", "up"},
		{"ip", "-n", ns, "link", "set", "vb", "up"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			exec.Command("ip", "netns", "del", ns).Run()
			t.Fatalf("%v: %v: %s", c, err, out)
		}
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The thread never goes back to the host's namespace: it ends with
		// the goroutine (the runtime discards a locked thread on exit).
		runtime.LockOSThread()
		fd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			t.Error(err)
			return
		}
		f()
	}()
	<-done
}

// TestTransmitNeverStalls forces bad frames into a real transmit batch,
// some past fwd's own checks straight into the kernel, and checks that
// each is refused and counted and that the frames after them go out.
func TestTransmitNeverStalls(t *testing.T) {
	inNetns(t, func() {
		ports := []Port{{Name: "p0", Device: "va"}}
		b, err := newAFBackend(ports, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Error(err)
			return
		}
		defer b.close()
		p := b.ports[0]
		if !p.txVnet {
			t.Error("the kernel refused PACKET_VNET_HDR on the transmit socket")
			return
		}
		d := NewDatapath(ports, b.macs(), buildTable(ports, nil), nil, b)
		b.d = d
		rx, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(rx)
		vb, _ := netIfindex("vb")
		if err := unix.Bind(rx, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: vb}); err != nil {
			t.Error(err)
			return
		}
		unix.SetsockoptTimeval(rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})
		unix.SetsockoptInt(rx, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)

		frame := func(n int, tag byte) []byte {
			f := make([]byte, n)
			copy(f, []byte{0x02, 0, 0, 0, 0, 0xbb, 0x02, 0, 0, 0, 0, 0xaa, 0x88, 0xb5}) // local experimental EtherType
			for i := etherHdrLen; i < n; i++ {
				f[i] = tag
			}
			return f
		}
		// Refused by fwd's check, counted by the caller as tx_rejected.
		for _, tc := range []struct {
			name string
			f    []byte
			m    vnet
		}{
			{"longer than the MTU", frame(p.mtu+etherHdrLen+1, 1), vnet{}},
			{"shorter than Ethernet", frame(10, 1), vnet{}},
			{"segment size 0", frame(3000, 1), vnet{flags: vnetNeedsCsum, gsoType: gsoTCPv4, hdrLen: 54, csumStart: 34, csumOffset: 16}},
			{"checksum beyond the frame", frame(100, 1), vnet{flags: vnetNeedsCsum, csumStart: 90, csumOffset: 16}},
		} {
			if rs := b.put(0, tc.f, &tc.m, nil); rs != rTxRejected {
				t.Errorf("%s: put says %s, want %s", tc.name, reasonNames[rs], reasonNames[rTxRejected])
			}
		}
		// Forced past the check into the batch, first and in the middle:
		// the kernel refuses these (a super-frame type on a frame that is
		// no TCP packet; a frame shorter than an Ethernet header). More
		// good frames than a batch holds (put sends a full batch), and a
		// frame sent at once (send: ARP, released packets) in the middle.
		const good = txBatch + 72
		d.c.reasons[rOK] = good + 2 // as if Handle had counted each frame forwarded
		p.queue(frame(3000, 2), &vnet{flags: vnetNeedsCsum, gsoType: gsoTCPv4, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16}, rOK)
		for i := 0; i < good; i++ {
			if i == good/2 {
				p.queue(frame(5, 3), &vnet{}, rOK)
			}
			if i == good/2+10 && !b.send(0, frame(400, 0xee)) {
				t.Error("send refused a plain frame")
			}
			if rs := b.put(0, frame(60+i, byte(i)), &vnet{}, nil); rs != rOK {
				t.Errorf("good frame %d: %s", i, reasonNames[rs])
				return
			}
		}
		b.flush(0)
		refused := d.c.reasons[rTxRejected] + d.c.reasons[rTxFull]
		if d.c.ports[0].txPkts != good+1 || refused != 2 || d.c.reasons[rOK] != good || p.txN != 0 {
			t.Errorf("the kernel took %d frames, %d refused (forwarded %d), of %d and one sent at once; %d still queued",
				d.c.ports[0].txPkts, refused, d.c.reasons[rOK], good+2, p.txN)
		}
		got, sentNow := 0, 0
		buf := make([]byte, 4096)
		for {
			n, _, err := unix.Recvfrom(rx, buf, 0)
			if err != nil {
				break
			}
			if n >= etherHdrLen && buf[12] == 0x88 && buf[13] == 0xb5 {
				switch {
				case n >= 60 && n < 60+good && buf[etherHdrLen] == byte(n-60):
					got++
				case n == 400 && buf[etherHdrLen] == 0xee:
					sentNow++
				default:
					t.Errorf("a refused frame went out (%d bytes)", n)
				}
			}
		}
		if got != good || sentNow != 1 {
			t.Errorf("%d of the %d good frames arrived, and %d of the one sent at once", got, good, sentNow)
		}
		// A socket that refuses every frame for txStallAfter is reported,
		// and recovers when it takes one.
		now := time.Now().UnixNano()
		p.txFailSince, p.txFailLast = now-txStallAfter-1, now
		b.watchTX(now)
		if !d.c.ports[0].txStalled || d.c.ports[0].txStalls != 1 {
			t.Errorf("a port refusing for 2 s is not reported: stalled %v, stalls %d", d.c.ports[0].txStalled, d.c.ports[0].txStalls)
		}
		b.put(0, frame(60, 0), &vnet{}, nil)
		b.flush(0)
		b.watchTX(now + 1)
		if d.c.ports[0].txStalled {
			t.Error("still reported stalled after the kernel took a frame")
		}
		// Two refusals an hour apart are two episodes, not a stall.
		p.failed(unix.ENOBUFS, now)
		p.failed(unix.ENOBUFS, now+int64(time.Hour))
		b.watchTX(now + int64(time.Hour) + 1)
		if d.c.ports[0].txStalled || d.c.ports[0].txStalls != 1 {
			t.Errorf("two refusals an hour apart reported as a stall: stalled %v, stalls %d", d.c.ports[0].txStalled, d.c.ports[0].txStalls)
		}
	})
}

func netIfindex(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, err
	}
	return int(ifr.Uint32()), nil
}
