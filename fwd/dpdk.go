//go:build dpdk

package main

// The DPDK backend: a small cgo shim of our own over DPDK 22.11 (Debian's
// libdpdk-dev; github.com/yerden/go-dpdk is not available here). It is
// built only with `-tags dpdk` (make build-dpdk); without the tag,
// dpdk_stub.go explains how to get it.
//
// The shim is called once per burst, never per packet:
//
//	fm_rx   receives up to fmBurst mbufs from every port into C arrays:
//	        mbuf pointers, data pointers and lengths, a count per port.
//	Go      handles each frame in place, in the mbuf's own memory
//	        (Datapath.Handle), and writes a verdict per mbuf: the port to
//	        send it on, or -1.
//	fm_tx   transmits each mbuf on its verdict's port (one tx_burst per
//	        port) and frees the dropped ones and those the NIC refused:
//	        every mbuf is either transmitted or freed, exactly once.
//
// Packets built outside a burst (ARP requests, packets released by ARP)
// take fm_send, one call each: they are rare and never on the hot path.
// The arrays live in C memory, so Go's collector never sees the pointers
// and nothing is allocated per packet on the Go side.
//
// EAL arguments come from the configuration (fwd.dpdk.eal), so real NICs
// (ENA, ixgbe, i40e, mlx5) and virtual devices (net_af_packet, net_tap,
// net_memif, net_ring) are all configured the same way. Ports are named by
// their DPDK name (net_af_packet0) or number. EAL pins the calling thread,
// which main has locked for the poll loop.

/*
#cgo pkg-config: libdpdk
#include <stdlib.h>
#include <string.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_lcore.h>

#define FM_BURST 32

static int fm_init(int argc, char **argv) {
	int r = rte_eal_init(argc, argv);
	if (r < 0) return -rte_errno;
	return rte_eth_dev_count_avail();
}

static int fm_port_by_name(const char *name) {
	uint16_t id;
	if (rte_eth_dev_get_port_by_name(name, &id) != 0) return -1;
	return id;
}

static void fm_port_name(uint16_t port, char *buf) {
	rte_eth_dev_get_name_by_port(port, buf);
}

static struct rte_mempool *fm_pool(unsigned n) {
	return rte_pktmbuf_pool_create("fmcap_mbufs", n, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
}

static int fm_port_setup(uint16_t port, struct rte_mempool *mp, uint8_t *mac) {
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof conf);
	int r = rte_eth_dev_configure(port, 1, 1, &conf);
	if (r < 0) return r;
	uint16_t nrx = 1024, ntx = 1024;
	rte_eth_dev_adjust_nb_rx_tx_desc(port, &nrx, &ntx);
	int sock = rte_eth_dev_socket_id(port);
	if (sock < 0) sock = 0;
	if ((r = rte_eth_rx_queue_setup(port, 0, nrx, sock, NULL, mp)) < 0) return r;
	if ((r = rte_eth_tx_queue_setup(port, 0, ntx, sock, NULL)) < 0) return r;
	if ((r = rte_eth_dev_start(port)) < 0) return r;
	struct rte_ether_addr a;
	if ((r = rte_eth_macaddr_get(port, &a)) < 0) return r;
	memcpy(mac, a.addr_bytes, 6);
	return 0;
}

// fm_rx receives one burst per port. Frame k of the whole call is
// data[k][0:len[k]], wire length wire[k], held by mbufs[k].
static int fm_rx(int nports, const uint16_t *ports, struct rte_mbuf **mbufs, void **data,
		uint16_t *len, uint32_t *wire, uint16_t *counts) {
	int total = 0;
	for (int i = 0; i < nports; i++) {
		uint16_t n = rte_eth_rx_burst(ports[i], 0, mbufs + total, FM_BURST);
		counts[i] = n;
		for (uint16_t k = 0; k < n; k++) {
			struct rte_mbuf *m = mbufs[total + k];
			data[total + k] = rte_pktmbuf_mtod(m, void *);
			len[total + k] = m->data_len;
			wire[total + k] = m->pkt_len;
		}
		total += n;
	}
	return total;
}

// fm_tx sends mbuf k on port index verdict[k], or frees it when the verdict
// is negative. It returns how many the ports refused (freed, counted by Go
// through refused[]).
static void fm_tx(int nports, const uint16_t *ports, struct rte_mbuf **mbufs, const int16_t *verdict,
		int n, uint16_t *refused, uint32_t *refusedBytes) {
	struct rte_mbuf *out[FM_BURST * 8];
	for (int p = 0; p < nports; p++) {
		int m = 0;
		refused[p] = 0;
		refusedBytes[p] = 0;
		for (int k = 0; k < n; k++) {
			if (verdict[k] == p) {
				out[m++] = mbufs[k];
				if (m == FM_BURST * 8) {
					uint16_t s = rte_eth_tx_burst(ports[p], 0, out, m);
					for (int j = s; j < m; j++) { refusedBytes[p] += out[j]->pkt_len; rte_pktmbuf_free(out[j]); }
					refused[p] += m - s;
					m = 0;
				}
			}
		}
		if (m > 0) {
			uint16_t s = rte_eth_tx_burst(ports[p], 0, out, m);
			for (int j = s; j < m; j++) { refusedBytes[p] += out[j]->pkt_len; rte_pktmbuf_free(out[j]); }
			refused[p] += m - s;
		}
	}
	for (int k = 0; k < n; k++) {
		if (verdict[k] < 0 || verdict[k] >= nports) rte_pktmbuf_free(mbufs[k]);
	}
}

static int fm_send(uint16_t port, struct rte_mempool *mp, const void *data, uint16_t len) {
	struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
	if (m == NULL) return -1;
	char *p = rte_pktmbuf_append(m, len);
	if (p == NULL) { rte_pktmbuf_free(m); return -1; }
	memcpy(p, data, len);
	if (rte_eth_tx_burst(port, 0, &m, 1) != 1) { rte_pktmbuf_free(m); return -1; }
	return 0;
}

// fm_gen (benchmark only) puts n copies of a frame into port's TX queue;
// on a net_ring loopback port they come back as received frames.
static int fm_gen(uint16_t port, struct rte_mempool *mp, const void *tmpl, uint16_t len, int n) {
	struct rte_mbuf *m[FM_BURST];
	if (n > FM_BURST) n = FM_BURST;
	if (rte_pktmbuf_alloc_bulk(mp, m, n) != 0) return 0;
	for (int i = 0; i < n; i++) memcpy(rte_pktmbuf_append(m[i], len), tmpl, len);
	uint16_t s = rte_eth_tx_burst(port, 0, m, n);
	for (int i = s; i < n; i++) rte_pktmbuf_free(m[i]);
	return s;
}

static void fm_close(int nports, const uint16_t *ports) {
	for (int i = 0; i < nports; i++) {
		rte_eth_dev_stop(ports[i]);
		rte_eth_dev_close(ports[i]);
	}
	rte_eal_cleanup();
}

static int fm_mtu(uint16_t port) {
	uint16_t mtu;
	if (rte_eth_dev_get_mtu(port, &mtu) != 0) return 0;
	return mtu;
}

static uint64_t fm_imissed(uint16_t port) {
	struct rte_eth_stats s;
	if (rte_eth_stats_get(port, &s) != 0) return 0;
	return s.imissed + s.rx_nombuf;
}
*/
import "C"

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"
)

const fmBurst = C.FM_BURST

type dpdkBackend struct {
	ports        []C.uint16_t
	names        []string
	mac          [][6]byte
	mp           *C.struct_rte_mempool
	d            *Datapath
	ready        func()
	stop         atomic.Bool
	closed       bool
	mbufs        []*C.struct_rte_mbuf
	data         []unsafe.Pointer
	lens         []C.uint16_t
	wire         []C.uint32_t
	counts       []C.uint16_t
	verdict      []C.int16_t
	refused      []C.uint16_t
	refusedBytes []C.uint32_t
	cmem         []unsafe.Pointer
	gen          *genState // benchmark generator (gen.go)
}

// calloc'd C arrays, viewed as Go slices.
func carray[T any](b *dpdkBackend, n int) []T {
	var z T
	p := C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(z)))
	b.cmem = append(b.cmem, p)
	return unsafe.Slice((*T)(p), n)
}

func newDPDKBackend(eal []string, ports []Port) (backend, error) {
	argv := append([]string{"fwd"}, eal...)
	cargs := make([]*C.char, len(argv))
	for i, a := range argv {
		cargs[i] = C.CString(a)
	}
	n := C.fm_init(C.int(len(argv)), &cargs[0])
	if n < 0 {
		return nil, fmt.Errorf("dpdk: rte_eal_init %v: %s (check fwd.dpdk.eal; hugepages or --no-huge, distinct --file-prefix per process)", eal, C.GoString(C.rte_strerror(-n)))
	}
	b := &dpdkBackend{}
	// A vdev that fails to probe leaves EAL up with fewer ports: check each.
	for _, p := range ports {
		id := C.fm_port_by_name(C.CString(p.Device))
		if id < 0 {
			if v, err := strconv.Atoi(p.Device); err == nil && v >= 0 && v < int(C.RTE_MAX_ETHPORTS) && C.rte_eth_dev_is_valid_port(C.uint16_t(v)) != 0 {
				id = C.int(v)
			}
		}
		if id < 0 {
			var have []string
			buf := (*C.char)(C.calloc(C.RTE_ETH_NAME_MAX_LEN, 1))
			for i := 0; i < int(C.RTE_MAX_ETHPORTS); i++ {
				if C.rte_eth_dev_is_valid_port(C.uint16_t(i)) != 0 {
					C.fm_port_name(C.uint16_t(i), buf)
					have = append(have, fmt.Sprintf("%d=%s", i, C.GoString(buf)))
				}
			}
			C.free(unsafe.Pointer(buf))
			C.rte_eal_cleanup()
			return nil, fmt.Errorf("dpdk: port %s: no DPDK port named %q (ports: %v; did its --vdev/-a probe? see the EAL messages above)", p.Name, p.Device, have)
		}
		b.ports = append(b.ports, C.uint16_t(id))
		b.names = append(b.names, p.Device)
	}
	b.mp = C.fm_pool(8191)
	if b.mp == nil {
		C.rte_eal_cleanup()
		return nil, fmt.Errorf("dpdk: mbuf pool: %s (give EAL more memory: -m)", C.GoString(C.rte_strerror(C.rte_errno)))
	}
	for i, id := range b.ports {
		var mac [6]C.uint8_t
		if r := C.fm_port_setup(id, b.mp, &mac[0]); r < 0 {
			b.close()
			return nil, fmt.Errorf("dpdk: port %s (%s): setup: %s", ports[i].Name, ports[i].Device, C.GoString(C.rte_strerror(-r)))
		}
		var m [6]byte
		for k := range m {
			m[k] = byte(mac[k])
		}
		b.mac = append(b.mac, m)
	}
	np := len(b.ports)
	b.mbufs = carray[*C.struct_rte_mbuf](b, np*fmBurst)
	b.data = carray[unsafe.Pointer](b, np*fmBurst)
	b.lens = carray[C.uint16_t](b, np*fmBurst)
	b.wire = carray[C.uint32_t](b, np*fmBurst)
	b.counts = carray[C.uint16_t](b, np)
	b.verdict = carray[C.int16_t](b, np*fmBurst)
	b.refused = carray[C.uint16_t](b, np)
	b.refusedBytes = carray[C.uint32_t](b, np)
	return b, nil
}

// setGen makes run inject n copies of frame into port 0 and return once
// they are all handled (fwd --bench-gen).
func (b *dpdkBackend) setGen(frame []byte, n int) *genState {
	g := &genState{frame: frame, left: n, cframe: C.CBytes(frame)}
	b.cmem = append(b.cmem, g.cframe)
	b.gen = g
	return g
}

func (b *dpdkBackend) macs() [][6]byte { return b.mac }

func (b *dpdkBackend) mtus() []int {
	m := make([]int, len(b.ports))
	for i, p := range b.ports {
		m[i] = int(C.fm_mtu(p))
	}
	return m
}
func (b *dpdkBackend) setDatapath(d *Datapath, ready func()) {
	b.d, b.ready = d, ready
	d.nic = func(port int) uint64 { return uint64(C.fm_imissed(b.ports[port])) }
}
func (b *dpdkBackend) halt() { b.stop.Store(true) }

func (b *dpdkBackend) send(port int, f []byte) bool {
	if len(f) == 0 || len(f) > 0xffff {
		return false
	}
	if C.fm_send(b.ports[port], b.mp, unsafe.Pointer(&f[0]), C.uint16_t(len(f))) != 0 {
		return false
	}
	b.d.TxTaken(port, 1, uint64(len(f)))
	return true
}

// run polls every port; after idleSpins empty polls it sleeps idleSleep
// between polls, so an idle forwarder does not hold a core at 100 % (a
// busy one never sleeps).
func (b *dpdkBackend) run() {
	const idleSpins, idleSleep = 20000, 20 * time.Microsecond
	np := C.int(len(b.ports))
	d := b.d
	empty := 0
	first := true
	for !b.stop.Load() {
		d.Begin(time.Now().UnixNano())
		if g := b.gen; g != nil && g.left > 0 {
			k := C.fm_gen(b.ports[0], b.mp, g.cframe, C.uint16_t(len(g.frame)), C.int(min(g.left, fmBurst)))
			g.left -= int(k)
		}
		n := int(C.fm_rx(np, &b.ports[0], &b.mbufs[0], &b.data[0], &b.lens[0], &b.wire[0], &b.counts[0]))
		k := 0
		for i := range b.ports {
			for j := 0; j < int(b.counts[i]); j++ {
				f := unsafe.Slice((*byte)(b.data[k]), int(b.lens[k]))
				b.verdict[k] = C.int16_t(d.Handle(i, f, int(b.wire[k])))
				k++
			}
		}
		if n > 0 {
			C.fm_tx(np, &b.ports[0], &b.mbufs[0], &b.verdict[0], C.int(n), &b.refused[0], &b.refusedBytes[0])
			// What the PMD took: every frame sent to a port, less those it
			// refused (freed by fm_tx and counted as tx_ring_full).
			for k := 0; k < n; k++ {
				if v := int(b.verdict[k]); v >= 0 && v < len(b.ports) {
					d.TxTaken(v, 1, uint64(b.wire[k]))
				}
			}
			for i := range b.ports {
				for r := 0; r < int(b.refused[i]); r++ {
					d.TxFailed(i, 0)
				}
				d.c.ports[i].txPkts -= uint64(b.refused[i])
				d.c.ports[i].txBytes -= uint64(b.refusedBytes[i])
			}
		}
		d.End()
		if first && b.ready != nil {
			b.ready()
			first = false
		}
		if g := b.gen; g != nil {
			if n > 0 {
				g.last = time.Now()
				if g.first.IsZero() {
					g.first = g.last
				}
			} else if g.left == 0 && empty > idleSpins {
				return // everything generated came back
			}
		}
		if n == 0 {
			if empty++; empty > idleSpins {
				time.Sleep(idleSleep)
			}
		} else {
			empty = 0
		}
	}
}

func (b *dpdkBackend) close() {
	if b.closed {
		return
	}
	b.closed = true
	C.fm_close(C.int(len(b.ports)), (*C.uint16_t)(unsafe.Pointer(unsafe.SliceData(b.ports))))
	for _, p := range b.cmem {
		C.free(p)
	}
}
