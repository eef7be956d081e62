package main

// The stand-in's devices and sockets, and the two loops between them.

import (
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// openTUN creates (or attaches to, when it exists) the TUN device name,
// without the packet-information prefix (each read and write is one bare IP
// packet), sets its MTU and brings it up, so that routes through it can be
// added as soon as "ready" is printed.
func openTUN(name string, mtu int) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUN name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, err)
	}
	if err := linkUp(name, mtu); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// Non-blocking, so that reads and writes go through Go's poller instead
	// of holding a thread each.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUN %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}

// linkUp sets the device's MTU and IFF_UP, as `ip link set NAME mtu MTU up`.
func linkUp(name string, mtu int) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for ioctls: %w", err)
	}
	defer unix.Close(s)
	ifr, _ := unix.NewIfreq(name)
	ifr.SetUint32(uint32(mtu))
	if err := unix.IoctlIfreq(s, unix.SIOCSIFMTU, ifr); err != nil {
		return fmt.Errorf("set MTU of %s to %d: %w", name, mtu, err)
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("flags of %s: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// openRawSender opens the socket GENEVE goes out on: raw IPv4 with the
// header included, so that gwlbsim chooses each flow's UDP source port and
// sends a UDP checksum of 0, as GWLB does. The kernel fills in the IPv4
// header checksum.
func openRawSender() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return -1, fmt.Errorf("raw socket (needs CAP_NET_RAW): %w", err)
	}
	return fd, nil
}

// toAppliance reads packets from the TUN into buf after room for the
// outer headers, wraps them and sends them to the appliance.
func (s *sim) toAppliance(tun *os.File, raw int, stderr io.Writer) {
	buf := make([]byte, s.overhead+65536)
	to := &unix.SockaddrInet4{Addr: s.cfg.appliance.As4()}
	for {
		n, err := tun.Read(buf[s.overhead:])
		if err != nil {
			fmt.Fprintln(stderr, "gwlbsim: read TUN:", err)
			return
		}
		s.c.tunRead.Add(1)
		m, ok := s.encap(buf, n)
		if !ok {
			s.c.notIP.Add(1)
			continue
		}
		if err := unix.Sendto(raw, buf[:m], 0, to); err != nil {
			s.c.sendErrors.Add(1) // EMSGSIZE: the appliance link's MTU is below the frame
			s.noteSendError(err)
			continue
		}
		s.c.sent.Add(1)
	}
}

// fromAppliance receives what the appliance returns, checks it and writes
// the inner packets to the TUN.
func (s *sim) fromAppliance(conn *net.UDPConn, tun *os.File, stderr io.Writer) {
	buf := make([]byte, 65536)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			fmt.Fprintln(stderr, "gwlbsim: receive:", err)
			return
		}
		s.c.received.Add(1)
		inner, ok := s.check(from, buf[:n])
		if !ok {
			continue
		}
		if _, err := tun.Write(inner); err != nil {
			s.c.tunWriteErrors.Add(1)
			continue
		}
		s.c.delivered.Add(1)
	}
}
