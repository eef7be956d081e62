package main

// The filter runs through libpcap itself, as tcpdump applies it: compiled
// once with pcap_compile on a dead Ethernet handle (optimised, netmask
// unknown: what gopacket's pcap.NewBPF and tcpdump -r do), then run with
// pcap_offline_filter over the candidate packets of a frame in one cgo call.
//
// fmslice does not use gopacket/pcap (nor gopacket/pcapgo for pcapng, see
// output.go) because both import gopacket/layers, whose initialisation cost
// every fmslice run 4 ms and 1 800 page faults (perf stat of a binary that
// only imports it: 2 037 faults, 5.6 ms, against 208 and 1.8 ms for hello
// world); an indexed query over 50 M packets has 50 ms in all. The rest of
// fmcap, and fmslice's tests, use gopacket.

/*
#cgo LDFLAGS: -lpcap
#include <stdlib.h>
#include <pcap/pcap.h>

static int compile(struct bpf_program *prog, const char *expr, int snaplen, char *errbuf) {
	pcap_t *p = pcap_open_dead(DLT_EN10MB, snaplen);
	if (p == NULL) {
		snprintf(errbuf, PCAP_ERRBUF_SIZE, "pcap_open_dead failed");
		return -1;
	}
	int rc = pcap_compile(p, prog, expr, 1, PCAP_NETMASK_UNKNOWN);
	if (rc != 0)
		snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", pcap_geterr(p));
	pcap_close(p);
	return rc;
}

// match_many sets ok[i] for the n packets at base+off[i] (caplen[i] bytes
// captured of wirelen[i]). pcap_offline_filter only reads the program, so
// several threads may run one program at once.
static void match_many(const struct bpf_program *prog, const unsigned char *base,
		const unsigned int *off, const unsigned int *caplen, const unsigned int *wirelen,
		unsigned char *ok, int n) {
	struct pcap_pkthdr h = {0};
	for (int i = 0; i < n; i++) {
		h.caplen = caplen[i];
		h.len = wirelen[i];
		ok[i] = pcap_offline_filter(prog, &h, base + off[i]) != 0;
	}
}
*/
import "C"

import (
	"errors"
	"unsafe"
)

// bpf is a compiled filter, safe for concurrent use; it lives as long as
// the process.
type bpf struct {
	prog C.struct_bpf_program
}

func compileBPF(expr string, snaplen int) (*bpf, error) {
	cs := C.CString(expr)
	defer C.free(unsafe.Pointer(cs))
	var errbuf [C.PCAP_ERRBUF_SIZE]C.char
	b := &bpf{}
	if C.compile(&b.prog, cs, C.int(snaplen), &errbuf[0]) != 0 {
		return nil, errors.New(C.GoString(&errbuf[0]))
	}
	return b, nil
}

// batch holds one worker's candidates of a frame for bpf.match.
type batch struct {
	off, caplen, wirelen []C.uint
	ok                   []C.uchar
}

func (b *batch) reset() {
	b.off, b.caplen, b.wirelen = b.off[:0], b.caplen[:0], b.wirelen[:0]
}

func (b *batch) add(off, caplen, wirelen uint32) {
	b.off = append(b.off, C.uint(off))
	b.caplen = append(b.caplen, C.uint(caplen))
	b.wirelen = append(b.wirelen, C.uint(wirelen))
}

// match runs the filter over the batch's packets in frame; ok[i] says
// whether packet i matched.
func (f *bpf) match(frame []byte, b *batch) []C.uchar {
	n := len(b.off)
	if cap(b.ok) < n {
		b.ok = make([]C.uchar, n)
	}
	b.ok = b.ok[:n]
	if n > 0 {
		C.match_many(&f.prog, (*C.uchar)(unsafe.Pointer(&frame[0])), &b.off[0], &b.caplen[0], &b.wirelen[0], &b.ok[0], C.int(n))
	}
	return b.ok
}
