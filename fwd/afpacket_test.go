package fwd

import (
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

// TestTransmitNeverStalls forces bad frames into a real transmit ring, some
// past fwd's own checks straight into the kernel, and checks that each is
// refused or skipped and that the frames after them go out.
func TestTransmitNeverStalls(t *testing.T) {
	inNetns(t, func() {
		p, err := openAFPacket("va")
		if err != nil {
			t.Error(err)
			return
		}
		defer p.close()
		if !p.txVnet {
			t.Error("the kernel refused PACKET_VNET_HDR on the transmit socket")
			return
		}
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
			if rs := p.put(tc.f, &tc.m, nil); rs != rTxRejected {
				t.Errorf("%s: put says %s, want %s", tc.name, reasonNames[rs], reasonNames[rTxRejected])
			}
		}
		// Forced past the check into the ring: the kernel refuses these
		// (a super-frame type on a frame that is no TCP packet; a frame
		// longer than the slot claims), and PACKET_LOSS makes it skip them.
		bad := frame(3000, 2)
		off := slot(p.txHead)
		m := vnet{flags: vnetNeedsCsum, gsoType: gsoTCPv4, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16}
		m.encode(p.tx[off+txDataOff:])
		copy(p.tx[off+txDataOff+vnetLen:], bad)
		p.mark(off, vnetLen+len(bad))
		off = slot(p.txHead)
		copy(p.tx[off+txDataOff:], make([]byte, vnetLen))
		p.mark(off, vnetLen+5) // shorter than an Ethernet header
		const good = 100
		for i := 0; i < good; i++ {
			if rs := p.put(frame(60+i, byte(i)), &vnet{}, nil); rs != rOK {
				t.Errorf("good frame %d: %s", i, reasonNames[rs])
				return
			}
		}
		var taken uint64
		skipped := 0
		start := time.Now()
		for time.Since(start) < 5*time.Second && taken+uint64(skipped) < good+2 {
			pk, _, sk := p.service(time.Now().UnixNano())
			taken += pk
			skipped += sk
			time.Sleep(5 * time.Millisecond)
		}
		// The short slot is skipped by the kernel itself (taken); the
		// super-frame it cannot segment by fwd, after txSkipAfter.
		if taken != good+1 || skipped != 1 || p.txQueued != 0 {
			t.Errorf("the kernel took %d slots and fwd skipped %d, of %d; %d still queued: the ring stalled", taken, skipped, good+2, p.txQueued)
		}
		got := 0
		buf := make([]byte, 4096)
		for {
			n, _, err := unix.Recvfrom(rx, buf, 0)
			if err != nil {
				break
			}
			if n >= etherHdrLen && buf[12] == 0x88 && buf[13] == 0xb5 {
				if n >= 60 && n < 60+good && buf[etherHdrLen] == byte(n-60) {
					got++
				} else {
					t.Errorf("a refused frame went out (%d bytes)", n)
				}
			}
		}
		if got != good {
			t.Errorf("%d of the %d good frames arrived", got, good)
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
