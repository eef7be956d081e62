// Command gwlbsim stands in for an AWS Gateway Load Balancer (GWLB) in
// tests and benchmarks of an appliance (fwd), on one machine, with no
// cloud: this kernel has no GENEVE device, so the GWLB end of the tunnel is
// this program.
//
// Topology (addresses from 198.18.0.0/15 only):
//
//	client ns ──veth── gwlb ns ──────────────veth (MTU 9000)── appliance ns
//	198.18.0.2     198.18.0.1  [TUN gwlb0]   198.18.1.1    198.18.1.2:6081 (fwd)
//	                           [gwlbsim ]
//	server ns ──veth───┘ 198.18.2.1
//	198.18.2.2
//
// The client and the server route to each other through the gwlb ns (their
// default routes point at it). In the gwlb ns, what arrives from the
// client's or the server's veth is routed into the TUN by a policy rule,
// and what gwlbsim writes back into the TUN goes on by the main table:
//
//	sysctl -w net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
//	gwlbsim --tun gwlb0 --local 198.18.1.1 --appliance 198.18.1.2 &   # wait for "ready"
//	ip rule add iif vc lookup 100; ip rule add iif vs lookup 100
//	ip route add default dev gwlb0 table 100
//
// (vc and vs are the gwlb ns's ends of the client's and the server's
// veths; rp_filter is off because packets come back out of the TUN from
// sources the main table routes elsewhere.) Inner IPv6 works the same way,
// with net.ipv6.conf.all.forwarding=1 and the rule and route given to
// `ip -6`; the tunnel itself stays IPv4, as GWLB's does. The end-to-end
// test (e2e_test.go) builds exactly this, with an echo appliance in place
// of fwd. As with GWLB, both directions of a
// connection pass through the appliance, each packet inside GENEVE.
//
// Every IP packet gwlbsim reads from the TUN is wrapped as GWLB does: outer
// IPv4 from --local to --appliance, UDP to port 6081 with checksum 0,
// GENEVE with the three GWLB options (class 0x0108: endpoint id and
// attachment id from the flags, a flow cookie from the packet's 5-tuple,
// the same for both directions of a connection), and sent with a raw
// socket, so that each flow also gets its own UDP source port (from its
// cookie): an appliance that answers from the wrong port, or swaps the
// ports, is caught. Every GENEVE datagram coming back to --local:6081 is
// checked statelessly against what gwlbsim sent for the packet it carries
// (the GENEVE header and options byte for byte, the outer source is the
// appliance, the source port the flow's) and its inner packet written to
// the TUN. The TUN's MTU is GWLB's, 8500, so the appliance's link needs
// 8568 bytes and more.
//
// Output: "ready" once the TUN and the sockets are set up; on SIGTERM or
// SIGINT, the counters, any mismatches with examples, and exit status 1 if
// there were mismatches.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gwlbsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tunName := fs.String("tun", "gwlb0", "TUN device to create or attach to")
	local := fs.String("local", "198.18.1.1", "this stand-in's IPv4 address: outer source, receives returns on UDP 6081")
	appliance := fs.String("appliance", "198.18.1.2", "the appliance's IPv4 address (it listens on UDP 6081)")
	endpoint := fs.String("endpoint-id", "0x0123456789abcdef", "GWLB endpoint id (option type 1), 64 bits")
	attachment := fs.String("attachment-id", "0xfedcba9876543210", "attachment id (option type 2), 64 bits")
	mtu := fs.Int("mtu", 8500, "the TUN's MTU (GWLB's is 8500)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := parseConfig(*local, *appliance, *endpoint, *attachment)
	if err != nil {
		fmt.Fprintln(stderr, "gwlbsim:", err)
		return 2
	}
	s := newSim(cfg)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	tun, err := openTUN(*tunName, *mtu)
	if err != nil {
		fmt.Fprintln(stderr, "gwlbsim:", err)
		return 1
	}
	raw, err := openRawSender()
	if err != nil {
		fmt.Fprintln(stderr, "gwlbsim:", err)
		return 1
	}
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.local, geneveUDPPort)))
	if err != nil {
		fmt.Fprintln(stderr, "gwlbsim:", err)
		return 1
	}
	// Bursts of a TCP window arrive at once. SetReadBuffer is capped by
	// net.core.rmem_max (208 KiB by default): as root, force the size.
	_ = conn.SetReadBuffer(8 << 20)
	if rc, err := conn.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 8<<20) })
	}

	fmt.Fprintln(stdout, "ready")
	go s.toAppliance(tun, raw, stderr)
	go s.fromAppliance(conn, tun, stderr)
	<-sigs
	if s.report(stdout) {
		return 1
	}
	return 0
}

// parseConfig reads the flags' addresses and ids.
func parseConfig(local, appliance, endpoint, attachment string) (config, error) {
	var c config
	var err error
	if c.local, err = netip.ParseAddr(local); err != nil || !c.local.Is4() {
		return c, fmt.Errorf("--local %q: want an IPv4 address (GWLB's outer header is always IPv4)", local)
	}
	if c.appliance, err = netip.ParseAddr(appliance); err != nil || !c.appliance.Is4() {
		return c, fmt.Errorf("--appliance %q: want an IPv4 address (GWLB's outer header is always IPv4)", appliance)
	}
	if c.endpointID, err = strconv.ParseUint(endpoint, 0, 64); err != nil {
		return c, fmt.Errorf("--endpoint-id %q: %w", endpoint, errors.Unwrap(err))
	}
	if c.attachmentID, err = strconv.ParseUint(attachment, 0, 64); err != nil {
		return c, fmt.Errorf("--attachment-id %q: %w", attachment, errors.Unwrap(err))
	}
	return c, nil
}
