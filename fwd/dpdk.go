//go:build dpdk

package fwd

// The DPDK backend: a small cgo shim of our own over DPDK 22.11 (Debian's
// libdpdk-dev; github.com/yerden/go-dpdk is not available here). It is
// built only with `-tags dpdk` (make build-dpdk); without the tag,
// dpdk_stub.go explains how to get it.
//
// The shim is called once per burst, never per packet:
//
//	fm_rx   receives up to fmBurst mbufs from every port into C arrays:
//	        mbuf pointers, data pointers and lengths, a count per port;
//	        and tops up the spare mbufs software segmentation takes.
//	Go      handles each frame in place, in the mbuf's own memory
//	        (Datapath.HandleMeta), and appends to the transmit list, in
//	        order, what becomes of it: its mbuf with the port to send it
//	        on, or to be freed; a super-frame the port cannot segment is
//	        cut here into spare mbufs (gsoPlan.build) and freed.
//	fm_tx   transmits the list (one tx_burst per port and up to 256
//	        frames, in the list's order) and frees the dropped mbufs and
//	        those the PMD refused: every mbuf is either transmitted or
//	        freed, exactly once.
//
// Packets built outside a burst (ARP requests, packets released by ARP)
// take fm_send, one call each: they are rare and never on the hot path.
// The arrays live in C memory, so Go's collector never sees the pointers
// and nothing is allocated per packet on the Go side.
//
// Offloads. DPDK hands fwd no virtio_net_hdr: a PMD over a kernel
// interface (net_af_packet, net_tap) passes on the kernel's TSO/GRO
// super-frames and partial checksums unmarked, so they are recognised
// from their bytes (sniffOffload in gso.go). A super-frame goes out with
// the mbuf's TSO request (RTE_MBUF_F_TX_TCP_SEG, l2/l3/l4_len, tso_segsz,
// IP and TCP checksum flags, checked by rte_eth_tx_prepare) where the PMD
// offers TCP_TSO (with IPV4_CKSUM and TCP_CKSUM) in tx_offload_capa, and
// is cut into MTU-sized segments here otherwise: the PMD is never handed
// a frame longer than its MTU. A frame the PMD refuses (prepare, or a
// full queue) is freed and counted, and the frames after it still go.
//
// Receiving a super-frame whole takes a PMD that can put up to 64 KiB in
// one mbuf. net_af_packet copies each frame of its TPACKET ring into one
// mbuf, cut to its frame size (devarg framesz, default 2048), and refuses a
// queue whose mbufs are smaller than its frames. So a port whose queue
// refuses the standard 2 KiB mbufs is given mbufs of the largest data
// room (65535 bytes, the field is 16 bits; 65407 after the headroom), and
// a net_af_packet vdev that is to see super-frames is configured with
//
//	framesz=65408,blocksz=2093056
//
// framesz: a multiple of 16 whose frame data (framesz - 32) fits those
// mbufs; frames of up to framesz - 66 = 65342 bytes then arrive whole
// (Linux's TCP super-frames at an MSS of 1448 reach 65 226). blocksz: a
// multiple of the page size that framesz divides (511 pages, 32 frames),
// because the PMD looks for frame i at i*framesz while the kernel starts
// each block afresh: with blocksz=65536 (one frame a block) the PMD reads
// the wrong place after the first frame and receives nothing more. The
// rings then take 2 x framecnt x 64 KiB of locked memory per port
// (framecnt=512: 64 MiB).
//
// A frame cut by the ring has an IP length longer than its bytes and is
// dropped as bad_ip_length (a GRO frame above 65 342 bytes: cap GRO on
// fwd's ports, `ip link set DEV gro_max_size 65000`, or turn it off); a
// frame that arrives in several mbufs (nb_segs > 1, a PMD doing scatter)
// is dropped as short_frame (only its first segment is visible here).
// net_af_packet joins a fanout group with PACKET_FANOUT_FLAG_DEFRAG, so
// the kernel reassembles IPv4 fragments before fwd sees them: a
// fragmented packet arrives as one longer than the MTU and is dropped as
// larger_than_mtu (TCP is unaffected; it sets DF).
//
// EAL arguments come from the configuration (fwd.dpdk.eal), so real NICs
// (ENA, ixgbe, i40e, mlx5) and virtual devices (net_af_packet, net_tap,
// net_memif, net_ring) are all configured the same way. Ports are named by
// their DPDK name (net_af_packet0) or number. EAL pins the calling thread,
// which main has locked for the poll loop.

/*
#cgo pkg-config: libdpdk
#cgo LDFLAGS: -lrte_net_ring
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_lcore.h>
#include <rte_ring.h>
#include <rte_eth_ring.h>

#define FM_BURST 32
// FM_SPARE mbufs are kept for software segmentation: a burst of 32
// super-frames from each of two ports, cut at an MSS of 1448 (45 segments
// each). Past that, a super-frame is dropped and counted (tx_ring_full).
#define FM_SPARE 4096

// fm_txe is one entry of the transmit list: what becomes of one mbuf.
struct fm_txe {
	struct rte_mbuf *m;
	int16_t port;   // index into ports; negative: free the mbuf
	uint16_t len;   // the frame's length (set as data_len and pkt_len of a one-segment mbuf)
	uint16_t mss;   // non-zero: a super-frame the PMD segments (TSO) into this payload size
	uint8_t l3, l4; // its IP and TCP header lengths
	uint8_t v6;
};

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

static struct rte_mempool *fm_pool(const char *name, unsigned n, unsigned room) {
	return rte_pktmbuf_pool_create(name, n, 256, 0, room, rte_socket_id());
}

// fm_room is the bytes of frame an mbuf of mp holds (after the headroom).
static unsigned fm_room(struct rte_mempool *mp) {
	return rte_pktmbuf_data_room_size(mp) - RTE_PKTMBUF_HEADROOM;
}

// fm_tso_capa is the TX offloads fwd asks of port for TSO: TCP_TSO with the
// IPv4 and TCP checksums it needs, or 0 when the PMD lacks one of them.
// net_tap offers TSO but does it in software (rte_gso) and, in 22.11,
// refuses a segment whose frame, Ethernet header included, is longer than
// the MTU, i.e. every full-sized one: fwd's own segmentation does the
// same work without the refusals.
static uint64_t fm_tso_capa(uint16_t port) {
	struct rte_eth_dev_info di;
	const uint64_t want = RTE_ETH_TX_OFFLOAD_TCP_TSO | RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
	if (rte_eth_dev_info_get(port, &di) != 0) return 0;
	if (di.driver_name != NULL && strcmp(di.driver_name, "net_tap") == 0) return 0;
	return (di.tx_offload_capa & want) == want ? want : 0;
}

// fm_port_configure configures port with one queue each way; an MTU (0:
// the PMD's default, 1500) is asked for only where the PMD says its frames
// can be that long, which net_af_packet never does (1518) while it carries
// frames up to its framesz: fwd then checks frames against the configured
// MTU itself (mtus).
static int fm_port_configure(uint16_t port, uint64_t txoff, uint16_t mtu, uint16_t *nrx, uint16_t *ntx) {
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof conf);
	conf.txmode.offloads = txoff;
	struct rte_eth_dev_info di;
	if (mtu && rte_eth_dev_info_get(port, &di) == 0 && (uint32_t)mtu + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN <= di.max_rx_pktlen) {
		conf.rxmode.mtu = mtu;
	}
	int r = rte_eth_dev_configure(port, 1, 1, &conf);
	if (r < 0) return r;
	*nrx = 1024;
	*ntx = 1024;
	rte_eth_dev_adjust_nb_rx_tx_desc(port, nrx, ntx);
	return 0;
}

static int fm_rxq(uint16_t port, uint16_t nrx, struct rte_mempool *mp) {
	int sock = rte_eth_dev_socket_id(port);
	if (sock < 0) sock = 0;
	return rte_eth_rx_queue_setup(port, 0, nrx, sock, NULL, mp);
}

static int fm_port_start(uint16_t port, uint16_t ntx, uint8_t *mac) {
	int sock = rte_eth_dev_socket_id(port);
	if (sock < 0) sock = 0;
	int r;
	if ((r = rte_eth_tx_queue_setup(port, 0, ntx, sock, NULL)) < 0) return r;
	if ((r = rte_eth_dev_start(port)) < 0) return r;
	struct rte_ether_addr a;
	if ((r = rte_eth_macaddr_get(port, &a)) < 0) return r;
	memcpy(mac, a.addr_bytes, 6);
	return 0;
}

// fm_rx tops the spare mbufs up to FM_SPARE (as many as mp gives), then
// receives one burst per port. Frame k of the whole call is
// data[k][0:len[k]], wire length wire[k], held by mbufs[k].
static int fm_rx(int nports, const uint16_t *ports, struct rte_mbuf **mbufs, void **data,
		uint16_t *len, uint32_t *wire, uint16_t *counts,
		struct rte_mempool *mp, struct rte_mbuf **spare, void **spareData, int *nspare) {
	int s = *nspare;
	if (s < FM_SPARE && rte_pktmbuf_alloc_bulk(mp, spare + s, FM_SPARE - s) == 0) {
		s = FM_SPARE;
	} else {
		// All or nothing: when the pool runs low, take what it has a burst at a time.
		while (s + FM_BURST <= FM_SPARE && rte_pktmbuf_alloc_bulk(mp, spare + s, FM_BURST) == 0) s += FM_BURST;
	}
	for (int j = *nspare; j < s; j++) spareData[j] = rte_pktmbuf_mtod(spare[j], void *);
	*nspare = s;
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

static void fm_refuse(struct rte_mbuf *m, uint16_t *refused, uint32_t *refusedBytes) {
	(*refused)++;
	*refusedBytes += m->pkt_len;
	rte_pktmbuf_free(m);
}

// fm_flush transmits out[0:m] on port. A frame the PMD refuses, in
// rte_eth_tx_prepare (an offload request it cannot meet) or in
// rte_eth_tx_burst (which stops at a frame it cannot send: net_tap at an
// error), is freed and counted, and the frames after it still go; when
// the PMD takes nothing twice running, its queue is full and the rest is
// freed and counted too.
static void fm_flush(uint16_t port, int tso, struct rte_mbuf **out, int m, uint16_t *refused, uint32_t *refusedBytes) {
	int i = 0, stuck = 0;
	while (i < m) {
		uint16_t ok = m - i;
		if (tso) ok = rte_eth_tx_prepare(port, 0, out + i, m - i);
		uint16_t s = rte_eth_tx_burst(port, 0, out + i, ok);
		i += s;
		if (s == 0 && ++stuck == 2) {
			while (i < m) fm_refuse(out[i++], refused, refusedBytes);
			return;
		}
		if (s > 0) stuck = 0;
		if (i < m) fm_refuse(out[i++], refused, refusedBytes);
	}
}

// fm_tx transmits the list txe[0:n], port by port, each in the list's
// order, and frees the entries with no port. refused[p] and
// refusedBytes[p] say what port p's PMD did not take (freed).
static void fm_tx(int nports, const uint16_t *ports, const uint8_t *tso, const struct fm_txe *txe, int n,
		uint16_t *refused, uint32_t *refusedBytes) {
	struct rte_mbuf *out[FM_BURST * 8];
	for (int p = 0; p < nports; p++) {
		int m = 0;
		refused[p] = 0;
		refusedBytes[p] = 0;
		for (int k = 0; k < n; k++) {
			const struct fm_txe *e = &txe[k];
			if (e->port != p) continue;
			struct rte_mbuf *mb = e->m;
			if (mb->nb_segs == 1) {
				mb->data_len = e->len;
				mb->pkt_len = e->len;
			}
			if (e->mss) {
				mb->l2_len = RTE_ETHER_HDR_LEN;
				mb->l3_len = e->l3;
				mb->l4_len = e->l4;
				mb->tso_segsz = e->mss;
				mb->ol_flags |= RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_TCP_CKSUM |
					(e->v6 ? RTE_MBUF_F_TX_IPV6 : RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM);
			}
			out[m++] = mb;
			if (m == FM_BURST * 8) {
				fm_flush(ports[p], tso[p], out, m, &refused[p], &refusedBytes[p]);
				m = 0;
			}
		}
		if (m > 0) fm_flush(ports[p], tso[p], out, m, &refused[p], &refusedBytes[p]);
	}
	for (int k = 0; k < n; k++) {
		if (txe[k].port < 0 || txe[k].port >= nports) rte_pktmbuf_free(txe[k].m);
	}
}

static void fm_free(struct rte_mbuf **m, int n) {
	rte_pktmbuf_free_bulk(m, n);
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

// fm_fill (benchmark only) allocates n ≤ FM_BURST mbufs holding a copy of
// a frame each; n, or 0 when the pool has not that many.
static int fm_fill(struct rte_mbuf **m, struct rte_mempool *mp, const void *tmpl, uint16_t len, int n) {
	if (n > FM_BURST) n = FM_BURST;
	if (n <= 0 || rte_pktmbuf_alloc_bulk(mp, m, n) != 0) return 0;
	for (int i = 0; i < n; i++) memcpy(rte_pktmbuf_append(m[i], len), tmpl, len);
	return n;
}

// fm_gen (benchmark only) puts n copies of a frame into port's TX queue;
// on a net_ring loopback port they come back as received frames.
static int fm_gen(uint16_t port, struct rte_mempool *mp, const void *tmpl, uint16_t len, int n) {
	struct rte_mbuf *m[FM_BURST];
	if ((n = fm_fill(m, mp, tmpl, len, n)) == 0) return 0;
	uint16_t s = rte_eth_tx_burst(port, 0, m, n);
	for (int i = s; i < n; i++) rte_pktmbuf_free(m[i]);
	return s;
}

// fm_ring_pair (benchmark only) makes a port of two rte_rings: what is
// sent goes into tx, what is received comes from rx. Unlike a net_ring
// vdev (one ring both ways: a loopback), a frame the port sends does not
// come back in. It returns the port id, or -errno.
static int fm_ring_pair(const char *name, struct rte_ring **rx, struct rte_ring **tx) {
	char n[RTE_RING_NAMESIZE];
	snprintf(n, sizeof n, "%.24s_rx", name);
	*rx = rte_ring_create(n, 4096, rte_socket_id(), RING_F_SP_ENQ | RING_F_SC_DEQ);
	snprintf(n, sizeof n, "%.24s_tx", name);
	*tx = rte_ring_create(n, 4096, rte_socket_id(), RING_F_SP_ENQ | RING_F_SC_DEQ);
	if (*rx == NULL || *tx == NULL) {
		int e = rte_errno;
		rte_ring_free(*rx);
		rte_ring_free(*tx);
		*rx = *tx = NULL;
		return -e;
	}
	int id = rte_eth_from_rings(name, rx, 1, tx, 1, rte_socket_id());
	return id < 0 ? -rte_errno : id;
}

// fm_gen_pair (benchmark only) frees what a ring-pair port sent (as a NIC
// frees what it transmitted), then puts n copies of a frame into its
// receive ring.
static int fm_gen_pair(struct rte_ring *rx, struct rte_ring *tx, struct rte_mempool *mp, const void *tmpl, uint16_t len, int n) {
	struct rte_mbuf *m[FM_BURST];
	unsigned d;
	do { // all of it: a burst can send more than FM_BURST (segments)
		d = rte_ring_dequeue_burst(tx, (void **)m, FM_BURST, NULL);
		if (d > 0) rte_pktmbuf_free_bulk(m, d);
	} while (d == FM_BURST);
	if ((n = fm_fill(m, mp, tmpl, len, n)) == 0) return 0;
	unsigned s = rte_ring_enqueue_burst(rx, (void **)m, n, NULL);
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

// fm_mtu_range gives the MTUs port's PMD takes (rte_eth_dev_info's
// min_mtu..max_mtu) and its driver's name; -1 when it cannot say.
static int fm_mtu_range(uint16_t port, uint16_t *lo, uint16_t *hi, const char **drv) {
	struct rte_eth_dev_info di;
	if (rte_eth_dev_info_get(port, &di) != 0) return -1;
	*lo = di.min_mtu;
	*hi = di.max_mtu;
	*drv = di.driver_name;
	return 0;
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
	"strings"
	"sync/atomic"
	"time"
	// unsafe here, not in unsafe.go: it is the cgo boundary itself (C
	// arrays viewed as Go slices, mbuf data as frames, pointers handed to
	// the shim), written in C's types that only this file, behind the
	// dpdk tag, can name.
	"unsafe"
)

const (
	fmBurst = C.FM_BURST
	fmSpare = C.FM_SPARE

	// jumboRoom is the data room of the mbufs for ports that refuse the
	// standard ones (net_af_packet with a large framesz): the largest the
	// 16-bit field holds, so that a 64 KiB super-frame fits one mbuf.
	jumboRoom = 65535
	// jumboPerPort mbufs of 64 KiB per port in the jumbo pool: a PMD that
	// copies into mbufs (net_af_packet) holds none between bursts.
	jumboPerPort = 512
)

type dpdkBackend struct {
	ports        []C.uint16_t
	names        []string
	mac          [][6]byte
	mp           *C.struct_rte_mempool // standard mbufs: receive, segments, fm_send
	jumbo        *C.struct_rte_mempool // 64 KiB mbufs for ports that need them (nil: none does)
	room         int                   // bytes of frame an mbuf of mp holds
	tso          []C.uint8_t           // per port: the PMD segments super-frames (fm_tso_capa)
	cfgMTU       []int                 // per port: the configured MTU (0: none)
	d            *Datapath
	ready        func()
	stop         atomic.Bool
	closed       bool
	mbufs        []*C.struct_rte_mbuf
	data         []unsafe.Pointer
	lens         []C.uint16_t
	wire         []C.uint32_t
	counts       []C.uint16_t
	txe          []C.struct_fm_txe // the transmit list of a burst
	spare        []*C.struct_rte_mbuf
	spareData    []unsafe.Pointer
	nspare       C.int // spare[:nspare] are ours, allocated by fm_rx, taken by segment
	refused      []C.uint16_t
	refusedBytes []C.uint32_t
	cmem         []unsafe.Pointer
	gen          *genState          // benchmark generator (gen.go)
	genFrame     unsafe.Pointer     // its frame, in C memory for fm_gen
	pairRx       *C.struct_rte_ring // port 0's rings when it is a ring pair (ringPairPrefix)
	pairTx       *C.struct_rte_ring
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
	for i, p := range ports {
		var id C.int
		if name, ok := strings.CutPrefix(p.Device, ringPairPrefix); ok && i == 0 {
			id = C.fm_ring_pair(C.CString(name), &b.pairRx, &b.pairTx)
			if id < 0 {
				C.rte_eal_cleanup()
				return nil, fmt.Errorf("dpdk: port %s: ring pair %q: %s", p.Name, name, C.GoString(C.rte_strerror(-id)))
			}
		} else {
			id = C.fm_port_by_name(C.CString(p.Device))
		}
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
		// An MTU outside the PMD's range would fail configure with a bare
		// "Invalid argument" (or, where fwd does not ask the PMD, pass
		// frames it cannot take): say which port, which range.
		if lo, hi, drv, ok := mtuRange(C.uint16_t(id)); ok {
			if err := mtuInRange(i, p, drv, lo, hi); err != nil {
				C.rte_eal_cleanup()
				return nil, err
			}
		}
		b.ports = append(b.ports, C.uint16_t(id))
		b.cfgMTU = append(b.cfgMTU, p.MTU)
		b.names = append(b.names, p.Device)
	}
	// Standard mbufs hold a frame of the largest MTU: a segment cut here
	// (gsoPlan.build) fits one.
	room := int(C.RTE_MBUF_DEFAULT_BUF_SIZE)
	for i, id := range b.ports {
		room = max(room, int(C.RTE_PKTMBUF_HEADROOM)+max(int(C.fm_mtu(id)), ports[i].MTU)+etherHdrLen+4)
	}
	// Enough for every port's receive and transmit descriptors (1024
	// each), a burst in hand and the spares, with room for the per-core
	// cache.
	nmbufs := max(8191, len(b.ports)*(2048+fmBurst)+fmSpare+1024)
	b.mp = C.fm_pool(C.CString("fmcap_mbufs"), C.uint(nmbufs), C.uint(min(room, jumboRoom)))
	if b.mp == nil {
		C.rte_eal_cleanup()
		return nil, fmt.Errorf("dpdk: mbuf pool: %s (give EAL more memory: -m)", C.GoString(C.rte_strerror(C.rte_errno)))
	}
	b.room = int(C.fm_room(b.mp))
	b.tso = carray[C.uint8_t](b, len(b.ports))
	for i, id := range b.ports {
		var mac [6]C.uint8_t
		if err := b.setup(i, id, ports[i].MTU, &mac, len(ports)); err != nil {
			b.close()
			return nil, fmt.Errorf("dpdk: port %s (%s): %w", ports[i].Name, ports[i].Device, err)
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
	b.txe = carray[C.struct_fm_txe](b, np*fmBurst+fmSpare)
	b.spare = carray[*C.struct_rte_mbuf](b, fmSpare)
	b.spareData = carray[unsafe.Pointer](b, fmSpare)
	b.refused = carray[C.uint16_t](b, np)
	b.refusedBytes = carray[C.uint32_t](b, np)
	return b, nil
}

// setup configures port i (DPDK port id) with TSO where its PMD offers it,
// its receive queue with standard mbufs or, when the PMD refuses them (its
// frames are larger: net_af_packet's framesz), with 64 KiB ones.
func (b *dpdkBackend) setup(i int, id C.uint16_t, mtu int, mac *[6]C.uint8_t, nports int) error {
	txoff := C.fm_tso_capa(id)
	if txoff != 0 {
		b.tso[i] = 1
	}
	var nrx, ntx C.uint16_t
	if r := C.fm_port_configure(id, txoff, C.uint16_t(mtu), &nrx, &ntx); r < 0 {
		return fmt.Errorf("configure: %s", C.GoString(C.rte_strerror(-r)))
	}
	if r := C.fm_rxq(id, nrx, b.mp); r < 0 {
		if b.jumbo == nil {
			b.jumbo = C.fm_pool(C.CString("fmcap_jumbo"), C.uint(jumboPerPort*nports), jumboRoom)
		}
		if b.jumbo == nil || C.fm_rxq(id, nrx, b.jumbo) < 0 {
			return fmt.Errorf("receive queue: %s (with 2 KiB mbufs; with %d-byte ones too: a net_af_packet framesz above 65439?)", C.GoString(C.rte_strerror(-r)), jumboRoom)
		}
	}
	if r := C.fm_port_start(id, ntx, &mac[0]); r < 0 {
		return fmt.Errorf("start: %s", C.GoString(C.rte_strerror(-r)))
	}
	return nil
}

// setGen makes run inject n copies of frame into port 0 and return once
// they are all handled (fwd --bench-gen).
func (b *dpdkBackend) setGen(frame []byte, n int) *genState {
	g := &genState{frame: frame, left: n}
	b.genFrame = C.CBytes(frame)
	b.cmem = append(b.cmem, b.genFrame)
	b.gen = g
	return g
}

func (b *dpdkBackend) macs() [][6]byte { return b.mac }

// mtuRange is the MTUs a DPDK port's PMD takes, and its driver's name.
func mtuRange(id C.uint16_t) (lo, hi int, driver string, ok bool) {
	var l, h C.uint16_t
	var drv *C.char
	if C.fm_mtu_range(id, &l, &h, &drv) != 0 {
		return 0, 0, "", false
	}
	if drv != nil {
		driver = C.GoString(drv)
	}
	return int(l), int(h), driver, true
}

// mtus is each port's MTU: the PMD's, or the configured one when larger
// (a PMD that cannot be told, as net_af_packet, may still carry it; what it
// refuses is counted as tx_rejected).
func (b *dpdkBackend) mtus() []int {
	m := make([]int, len(b.ports))
	for i, p := range b.ports {
		m[i] = max(int(C.fm_mtu(p)), b.cfgMTU[i])
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

// queue appends to the transmit list, from entry nt on, what becomes of
// received mbuf k, whose frame f HandleMeta sent to port out (-1: drop).
// It returns the new length of the list.
func (b *dpdkBackend) queue(nt, k, out int, f []byte) int {
	e := &b.txe[nt]
	e.m, e.port, e.len, e.mss = b.mbufs[k], -1, C.uint16_t(len(f)), 0
	nt++
	d := b.d
	if out < 0 {
		return nt
	}
	if !d.outGSO {
		if mtu := d.ports[out].mtu; mtu > 0 && len(f) > mtu+etherHdrLen {
			// An echo reply to a request the PMD reassembled (net_af_packet
			// defragments): the PMD is never handed more than its MTU.
			d.TxRefused(rTxRejected)
			return nt
		}
		e.port = C.int16_t(out)
		return nt
	}
	g := &d.plan
	if b.tso[out] != 0 && g.typ != gsoUDPL4 && g.p.l4-g.p.ip < 256 { // l3_len: 9 bits in the mbuf, 8 in fm_txe
		e.port, e.mss = C.int16_t(out), C.uint16_t(g.mss)
		e.l3, e.l4 = C.uint8_t(g.p.l4-g.p.ip), C.uint8_t(g.hl-g.p.l4)
		e.v6 = 0
		if g.p.v6 {
			e.v6 = 1
		}
		return nt
	}
	// Software segmentation: the segments in spare mbufs, in order after
	// the super-frame's own entry (which frees it).
	if g.hl+g.mss > b.room {
		d.TxRefused(rTxRejected) // a segment would not fit an mbuf: an MTU unknown to DPDK
		return nt
	}
	if g.n > int(b.nspare) {
		d.TxRefused(rTxFull) // the spares ran out this burst
		return nt
	}
	for s := 0; s < g.n; s++ {
		b.nspare--
		n := g.build(f, s, unsafe.Slice((*byte)(b.spareData[b.nspare]), b.room))
		t := &b.txe[nt]
		t.m, t.port, t.len, t.mss = b.spare[b.nspare], C.int16_t(out), C.uint16_t(n), 0
		nt++
	}
	return nt
}

// run polls every port; after idleSpins empty polls it sleeps idleSleep
// between polls, so an idle forwarder does not hold a core at 100 % (a
// busy one never sleeps).
func (b *dpdkBackend) run() {
	const idleSpins, idleSleep = 20000, 20 * time.Microsecond
	np := C.int(len(b.ports))
	d := b.d
	// The smallest MTU of the ports: a TCP frame longer than it is cut
	// like a super-frame (sniffOffload).
	minMTU := 0
	for i := range d.ports {
		if m := d.ports[i].mtu; m > 0 && (minMTU == 0 || m < minMTU) {
			minMTU = m
		}
	}
	empty := 0
	first := true
	for !b.stop.Load() {
		d.Begin(time.Now().UnixNano())
		if g := b.gen; g != nil && b.pairRx != nil {
			g.left -= int(C.fm_gen_pair(b.pairRx, b.pairTx, b.mp, b.genFrame, C.uint16_t(len(g.frame)), C.int(min(g.left, fmBurst))))
		} else if g != nil && g.left > 0 {
			k := C.fm_gen(b.ports[0], b.mp, b.genFrame, C.uint16_t(len(g.frame)), C.int(min(g.left, fmBurst)))
			g.left -= int(k)
		}
		n := int(C.fm_rx(np, &b.ports[0], &b.mbufs[0], &b.data[0], &b.lens[0], &b.wire[0], &b.counts[0],
			b.mp, &b.spare[0], &b.spareData[0], &b.nspare))
		k, nt := 0, 0
		for i := range b.ports {
			for j := 0; j < int(b.counts[i]); j++ {
				f := unsafe.Slice((*byte)(b.data[k]), int(b.lens[k]))
				// Appliance ports too: a tunnel datagram from a local
				// sender can carry a partial UDP checksum to finish.
				out := d.HandleMeta(i, f, int(b.wire[k]), sniffOffload(f, minMTU, d.ports[i].mtu))
				nt = b.queue(nt, k, out, f)
				k++
			}
		}
		if nt > 0 {
			C.fm_tx(np, &b.ports[0], &b.tso[0], &b.txe[0], C.int(nt), &b.refused[0], &b.refusedBytes[0])
			// What the PMD took: every frame queued to a port, less those
			// it refused (freed by fm_tx and counted as tx_ring_full). A
			// super-frame sent with TSO counts once, as the PMD took it;
			// one cut here counts once per segment.
			for k := 0; k < nt; k++ {
				if v := int(b.txe[k].port); v >= 0 && v < len(b.ports) {
					d.TxTaken(v, 1, uint64(b.txe[k].len))
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
	if b.nspare > 0 {
		C.fm_free(&b.spare[0], b.nspare)
		b.nspare = 0
	}
	C.fm_close(C.int(len(b.ports)), (*C.uint16_t)(unsafe.Pointer(unsafe.SliceData(b.ports))))
	for _, p := range b.cmem {
		C.free(p)
	}
}
