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

// libpcap is opened on the first filter (dlopen), not linked: linked, the
// dynamic loader mapped and relocated it and the libraries it needs
// (libdbus, libsystemd, libgcrypt, liblzma, libzstd, liblz4, libcap) at
// every start, 0.5 ms and 90 page faults (perf stat of an empty cgo
// program with and without -lpcap), which a time slice, without a filter,
// never uses.

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <pcap/pcap.h>

// libpcap's functions, set once by load before any filter is compiled.
static pcap_t *(*p_open_dead)(int, int);
static int (*p_compile)(pcap_t *, struct bpf_program *, const char *, int, bpf_u_int32);
static char *(*p_geterr)(pcap_t *);
static void (*p_close)(pcap_t *);
static int (*p_offline_filter)(const struct bpf_program *, const struct pcap_pkthdr *, const u_char *);

// load opens libpcap by its soname (Debian's, then other distributions',
// then the development link) and finds the functions fmslice calls.
static int load(char *errbuf) {
	static const char *names[] = {"libpcap.so.0.8", "libpcap.so.1", "libpcap.so"};
	void *h = NULL;
	char first[PCAP_ERRBUF_SIZE] = "";
	for (int i = 0; h == NULL && i < 3; i++) {
		h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
		if (h == NULL && i == 0)
			snprintf(first, sizeof first, "%s", dlerror()); // Debian's name: why it failed is the useful error (a missing dependency, another architecture)
	}
	if (h == NULL) {
		snprintf(errbuf, PCAP_ERRBUF_SIZE, "libpcap not loaded (install libpcap0.8 or libpcap): %s; %s", first, dlerror());
		return -1;
	}
	p_open_dead = dlsym(h, "pcap_open_dead");
	p_compile = dlsym(h, "pcap_compile");
	p_geterr = dlsym(h, "pcap_geterr");
	p_close = dlsym(h, "pcap_close");
	p_offline_filter = dlsym(h, "pcap_offline_filter");
	if (!p_open_dead || !p_compile || !p_geterr || !p_close || !p_offline_filter) {
		snprintf(errbuf, PCAP_ERRBUF_SIZE, "libpcap: a function is missing: %s", dlerror());
		return -1;
	}
	return 0;
}

static int compile(struct bpf_program *prog, const char *expr, int snaplen, char *errbuf) {
	pcap_t *p = p_open_dead(DLT_EN10MB, snaplen);
	if (p == NULL) {
		snprintf(errbuf, PCAP_ERRBUF_SIZE, "pcap_open_dead failed");
		return -1;
	}
	int rc = p_compile(p, prog, expr, 1, PCAP_NETMASK_UNKNOWN);
	if (rc != 0)
		snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", p_geterr(p));
	p_close(p);
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
		ok[i] = p_offline_filter(prog, &h, base + off[i]) != 0;
	}
}
*/
import "C"

import (
	"errors"
	"sync"
	"unsafe"
)

// loadPcap opens libpcap once (C.load); its error, if any, is every
// filter's.
var loadPcap = sync.OnceValue(func() error {
	var errbuf [C.PCAP_ERRBUF_SIZE]C.char
	if C.load(&errbuf[0]) != 0 {
		return errors.New(C.GoString(&errbuf[0]))
	}
	return nil
})

// bpf is a compiled filter, safe for concurrent use; it lives as long as
// the process.
type bpf struct {
	prog C.struct_bpf_program
}

func compileBPF(expr string, snaplen int) (*bpf, error) {
	if err := loadPcap(); err != nil {
		return nil, err
	}
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
