package e2e

// Helper roles: the test binary re-executed inside a network namespace
// (ip netns exec NS TESTBIN) as one end of a transfer, so both ends are
// the real Linux stack and the test needs no other program.

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const roleEnv = "FMCAP_E2E_ROLE"

// roleArgs is how many trailing arguments each role takes.
func roleArgs(role string) int {
	return map[string]int{"inject": 2, "vxlan-cut": 3, "health": 1, "geneve-probe": 2, "geneve-once": 2, "http-get": 1, "tcp-sink": 1, "tcp-source": 2, "udp-sink": 2, "udp-source": 2, "udp-refused": 1}[role]
}

// runRole runs a role and prints its result on stdout.
func runRole(role string, args []string) int {
	err := func() error {
		switch role {
		case "tcp-sink": // ADDR: accept one connection, read to EOF, print "bytes sha256"
			ln, err := net.Listen("tcp", args[0])
			if err != nil {
				return err
			}
			fmt.Println("listening")
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			h := sha256.New()
			n, err := io.Copy(h, c)
			c.Close()
			fmt.Printf("%d %x %s\n", n, h.Sum(nil), c.RemoteAddr().(*net.TCPAddr).IP)
			return err
		case "tcp-source": // ADDR BYTES: send BYTES of seeded random data, print "bytes sha256"
			size, _ := strconv.ParseInt(args[1], 10, 64)
			c, err := net.DialTimeout("tcp", args[0], 10*time.Second)
			if err != nil {
				return err
			}
			h := sha256.New()
			src := io.TeeReader(io.LimitReader(rand.New(rand.NewSource(size)), size), h)
			n, err := io.Copy(c, src)
			if err != nil {
				return err
			}
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, c) // wait for the sink to close: everything arrived
			fmt.Printf("%d %x\n", n, h.Sum(nil))
			return nil
		case "udp-sink": // ADDR N: receive until N datagrams or 3 s of silence; print "good bad"
			want, _ := strconv.Atoi(args[1])
			c, err := net.ListenPacket("udp4", args[0])
			if err != nil {
				return err
			}
			// Room for every datagram even when this process is not run
			// for a while (the default buffer holds about a hundred).
			if rc, err := c.(*net.UDPConn).SyscallConn(); err == nil {
				rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 16<<20) })
			}
			fmt.Println("listening")
			buf := make([]byte, 2048)
			seen := map[uint32]bool{}
			bad := 0
			for len(seen) < want {
				// 3 s of silence ends it, once the stream has begun; the first
				// datagram may take longer on a loaded machine.
				wait := 3 * time.Second
				if len(seen)+bad == 0 {
					wait = 30 * time.Second
				}
				c.SetReadDeadline(time.Now().Add(wait))
				n, _, err := c.ReadFrom(buf)
				if err != nil {
					break
				}
				if n < 4 || string(buf[4:n]) != string(udpPayload(binary.BigEndian.Uint32(buf), n-4)) {
					bad++
					continue
				}
				seen[binary.BigEndian.Uint32(buf)] = true
			}
			fmt.Printf("%d %d\n", len(seen), bad)
			return nil
		case "udp-source": // ADDR N: send N datagrams of 1000 bytes, paced
			n, _ := strconv.Atoi(args[1])
			c, err := net.Dial("udp4", args[0])
			if err != nil {
				return err
			}
			for i := 0; i < n; i++ {
				b := binary.BigEndian.AppendUint32(nil, uint32(i))
				if _, err := c.Write(append(b, udpPayload(uint32(i), 996)...)); err != nil {
					return err
				}
				if i%50 == 49 {
					time.Sleep(5 * time.Millisecond)
				}
			}
			fmt.Println(n)
			return nil
		case "http-get": // URL: print the body
			resp, err := http.Get(args[0])
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, err = io.Copy(os.Stdout, resp.Body)
			return err
		case "health": // URL: a health check as a load balancer makes it (10 s timeout: a loaded machine is slow, not down): print "STATUS BODY" or "down"
			c := &http.Client{Timeout: 10 * time.Second}
			resp, err := c.Get(args[0])
			if err != nil {
				fmt.Println("down")
				return nil
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			fmt.Printf("%d %s\n", resp.StatusCode, strings.TrimSpace(string(b)))
			return err
		case "inject": // PCAP DEV: send every frame of PCAP on DEV with a packet socket, in order; print the count
			return inject(args[0], args[1])
		case "vxlan-cut": // REMOTE VNI IPLEN: one VXLAN datagram to REMOTE:4789 carrying the first 100 bytes of an IPv4 frame whose IP length says IPLEN
			return vxlanCut(args[0], args[1], args[2])
		case "geneve-once": // LOCAL APPLIANCE: one GWLB datagram from LOCAL:6081, sent until echoed; print "echoed"
			return geneveOnce(args[0], args[1])
		case "geneve-probe": // LOCAL APPLIANCE: GENEVE datagrams from LOCAL:6081 to APPLIANCE:6081; print what came back of each
			return geneveProbe(args[0], args[1])
		case "udp-refused": // ADDR: a datagram to a closed port must come back as "connection refused"
			c, err := net.Dial("udp", args[0])
			if err != nil {
				return err
			}
			for try := 0; try < 5; try++ {
				c.Write([]byte("anyone?"))
				c.SetReadDeadline(time.Now().Add(time.Second))
				_, err = c.Read(make([]byte, 16))
				if errors.Is(err, syscall.ECONNREFUSED) {
					fmt.Println("refused")
					return nil
				}
			}
			return fmt.Errorf("no ICMP port unreachable came back: %v", err)
		}
		return fmt.Errorf("unknown role %q", role)
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, role+":", err)
		return 1
	}
	return 0
}

func udpPayload(seq uint32, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(int64(seq))).Read(b)
	return b
}
