package fwd

// A port is owned by one process. Two fwds on one interface would each
// receive every frame and answer ARP twice, and both transmit: traffic
// would be duplicated and captured twice, with nothing in the logs. So fwd
// takes a lock per device before it opens any, and a second fwd (AF_PACKET
// or DPDK) refuses to start, naming the holder.
//
// The lock is an abstract unix socket, "@fmcap/port/<interface>", bound
// and listening while fwd runs:
//   - abstract names live in the network namespace, as interface names do:
//     eth1 in two namespaces is two devices and two locks;
//   - the kernel releases the name when the process dies, even by kill -9:
//     no stale lock file to clean up, no directory that must be writable;
//   - a process that finds the name taken (EADDRINUSE) connects to it and
//     reads the holder's PID with SO_PEERCRED, which the kernel fills in
//     and the holder cannot forge, then its name from /proc/PID/comm.
// A lock file with flock(2) would be global rather than per namespace
// (eth1 in two test namespaces would clash) and would name no holder.
//
// What is locked: for AF_PACKET the interface. For DPDK the interface of
// a net_af_packet (or other iface=) vdev, under the same name, so an
// AF_PACKET and a DPDK fwd clash too; a PCI device by its address
// ("@fmcap/pci/<addr>"; DPDK's own primary-process lock covers that too,
// but not with --in-memory). Other vdevs (net_null, net_ring) are private
// to the process and need none.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// portLocks holds the listeners; close releases them.
type portLocks []net.Listener

func (l portLocks) close() {
	for _, ln := range l {
		ln.Close()
	}
}

var pciAddr = regexp.MustCompile(`^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$`)

// lockName is the abstract socket name that stands for port p's device,
// and the device as a message names it; "" when the device is private to
// this process.
func lockName(backend string, eal []string, p Port) (sock, dev string) {
	if backend != "dpdk" {
		return "@fmcap/port/" + p.Device, p.Device
	}
	if pciAddr.MatchString(p.Device) {
		return "@fmcap/pci/" + strings.ToLower(p.Device), "PCI device " + p.Device
	}
	if iface := vdevIface(eal, p.Device); iface != "" {
		return "@fmcap/port/" + iface, iface
	}
	return "", ""
}

// vdevIface finds the iface= argument of the vdev named name in the EAL
// arguments (--vdev=name,iface=eth1 or --vdev name,iface=eth1).
func vdevIface(eal []string, name string) string {
	for i, a := range eal {
		var spec string
		switch {
		case strings.HasPrefix(a, "--vdev="):
			spec = strings.TrimPrefix(a, "--vdev=")
		case a == "--vdev" && i+1 < len(eal):
			spec = eal[i+1]
		default:
			continue
		}
		kv := strings.Split(spec, ",")
		if kv[0] != name {
			continue
		}
		for _, s := range kv[1:] {
			if v, ok := strings.CutPrefix(s, "iface="); ok {
				return v
			}
		}
	}
	return ""
}

// lockPorts takes every port's lock, or none: the error names the port,
// the device and the process holding it.
func lockPorts(backend string, eal []string, ports []Port) (portLocks, error) {
	var held portLocks
	mine := map[string]string{} // lock name → port, to name our own clash
	for _, p := range ports {
		name, dev := lockName(backend, eal, p)
		if name == "" {
			continue
		}
		if other, dup := mine[name]; dup {
			held.close()
			return nil, fmt.Errorf("port %s: device %s is also port %s's (a device is one port)", p.Name, dev, other)
		}
		ln, err := net.Listen("unix", name)
		if err != nil {
			held.close()
			if errors.Is(err, syscall.EADDRINUSE) {
				return nil, fmt.Errorf("port %s: device %s is in use by %s: stop it, or give this fwd other devices", p.Name, dev, holder(name))
			}
			return nil, fmt.Errorf("port %s: lock %s: %w", p.Name, name, err)
		}
		// Accept and drop, so that the queue of a listener nobody accepts
		// from never fills up and blocks the next one asking who we are.
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		mine[name] = p.Name
		held = append(held, ln)
	}
	return held, nil
}

// holder names the process listening on the abstract socket name.
func holder(name string) string {
	const unknown = "another process (it did not answer; try: ss -xlp | grep fmcap)"
	// The holder may be between bind and listen: ask a few times.
	for try := 0; try < 5; try++ {
		c, err := net.DialTimeout("unix", name, time.Second)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		defer c.Close()
		raw, err := c.(*net.UnixConn).SyscallConn()
		if err != nil {
			return unknown
		}
		var cred *unix.Ucred
		var cerr error
		raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
		if cerr != nil {
			return unknown
		}
		if cred.Pid == 0 { // the kernel's answer for a PID outside our PID namespace
			return "a process in another PID namespace (a container?)"
		}
		comm, err := os.ReadFile("/proc/" + strconv.Itoa(int(cred.Pid)) + "/comm")
		if err != nil {
			return fmt.Sprintf("PID %d", cred.Pid)
		}
		return fmt.Sprintf("PID %d (%s)", cred.Pid, strings.TrimSpace(string(comm)))
	}
	return unknown
}
