// Package libpcap reads pcap and pcapng files with libpcap itself, so that
// what fmcap takes in is exactly what tcpdump and tshark's libpcap readers
// see: libpcap's truncation of over-long records, its link types, its
// refusals, its timestamps.
//
// Files are opened with nanosecond precision (pcap_fopen_offline_with_tstamp_precision)
// and read with pcap_next_ex, one cgo call per packet; the packet's bytes
// are libpcap's own buffer, valid until the next call, so reading does not
// allocate.
//
// libpcap reads through a stdio stream that this package makes over the file
// descriptor (fopencookie) and that counts the bytes libpcap consumes. That
// gives every record its byte offset, for standard input and pipes too (where
// ftell fails), and shows which records libpcap shortened: libpcap cuts a
// pcap record longer than the file's snaplen to the snaplen without saying
// so, but it consumes the whole record, so the bytes consumed beyond the
// record header exceed the length it reports.
package libpcap

/*
#cgo LDFLAGS: -lpcap
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pcap/pcap.h>

// src is the cookie of the stdio stream libpcap reads: a file descriptor
// and the count of bytes read from it so far.
typedef struct {
	int fd;
	int64_t off;
	unsigned char magic[4];
	int nmagic;
} src;

static ssize_t src_read(void *c, char *buf, size_t n) {
	src *s = c;
	ssize_t r;
	do {
		r = read(s->fd, buf, n);
	} while (r < 0 && errno == EINTR);
	if (r > 0) {
		// The stream's first bytes are the file's magic: libpcap does
		// not say which pcap flavour it found, and the record header's
		// size depends on it.
		for (ssize_t i = 0; i < r && s->nmagic < 4; i++)
			s->magic[s->nmagic++] = buf[i];
		s->off += r;
	}
	return r;
}

// src_seek answers only ftell's question (where are we?): libpcap never
// seeks a file it reads.
static int src_seek(void *c, off64_t *pos, int whence) {
	src *s = c;
	if (whence == SEEK_CUR && *pos == 0) {
		*pos = s->off;
		return 0;
	}
	errno = ESPIPE;
	return -1;
}

static int src_close(void *c) {
	src *s = c;
	int r = close(s->fd);
	free(s);
	return r;
}

// rec is one packet as pcap_next_ex returned it, with the stream offsets
// before and after it.
typedef struct {
	int64_t sec;
	int64_t nsec;
	unsigned int caplen;
	unsigned int len;
	const unsigned char *data;
	int64_t start;
	int64_t end;
} rec;

// handle is one open file; Go keeps a pointer to it (C memory, so that
// passing it to C costs no cgo pointer check).
typedef struct {
	pcap_t *p;
	FILE *fp;
	src *s;
	rec r;
	char errbuf[PCAP_ERRBUF_SIZE];
} handle;

// open_fd takes ownership of fd. On failure it closes fd and returns NULL
// with the reason in errbuf and the first bytes read in magic.
static handle *open_fd(int fd, char *errbuf, unsigned char *magic) {
	handle *h = calloc(1, sizeof *h);
	src *s = calloc(1, sizeof *s);
	if (h == NULL || s == NULL) {
		free(h);
		free(s);
		close(fd);
		snprintf(errbuf, PCAP_ERRBUF_SIZE, "out of memory");
		return NULL;
	}
	s->fd = fd;
	cookie_io_functions_t io = {.read = src_read, .seek = src_seek, .close = src_close};
	FILE *fp = fopencookie(s, "r", io);
	if (fp == NULL) {
		snprintf(errbuf, PCAP_ERRBUF_SIZE, "fopencookie: %s", strerror(errno));
		free(h);
		src_close(s);
		return NULL;
	}
	// Large reads: libpcap reads each record with one or two freads.
	setvbuf(fp, NULL, _IOFBF, 1 << 20);
	h->p = pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_NANO, errbuf);
	if (h->p == NULL) {
		memcpy(magic, s->magic, 4);
		fclose(fp); // closes fd and frees s
		free(h);
		return NULL;
	}
	h->fp = fp;
	h->s = s;
	memcpy(magic, s->magic, 4);
	return h;
}

// next reads one packet into h->r: 1 packet, 0 end of file, -1 error
// (pcap_geterr). The offsets are ftell's, before and after. pcap_next_ex
// says end of file with PCAP_ERROR_BREAK (-2).
static int next(handle *h) {
	struct pcap_pkthdr *hdr;
	const u_char *data;
	h->r.start = h->r.end;
	int rc = pcap_next_ex(h->p, &hdr, &data);
	if (rc == 1) {
		h->r.sec = hdr->ts.tv_sec;
		h->r.nsec = hdr->ts.tv_usec; // nanoseconds: the handle's precision
		h->r.caplen = hdr->caplen;
		h->r.len = hdr->len;
		h->r.data = data;
	} else if (rc == PCAP_ERROR_BREAK) {
		rc = 0;
	} else {
		rc = -1;
		snprintf(h->errbuf, PCAP_ERRBUF_SIZE, "%s", pcap_geterr(h->p));
	}
	h->r.end = ftello(h->fp);
	return rc;
}

static void close_handle(handle *h) {
	pcap_close(h->p); // fclose: closes fd and frees the cookie
	free(h);
}
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"
)

// Link types (DLT_ values, what pcap_datalink returns) that fmcap names.
const (
	LinkTypeEthernet = 1 // DLT_EN10MB
)

// Format is a capture file's format, from its magic number.
type Format int

const (
	FormatPcap Format = iota
	FormatPcapModified
	FormatPcapng
)

func (f Format) String() string {
	switch f {
	case FormatPcap:
		return "pcap"
	case FormatPcapModified:
		return "pcap (modified, Kuznetzov)"
	default:
		return "pcapng"
	}
}

// Magic numbers, as read little-endian from a file's first 4 bytes; libpcap
// accepts exactly these (savefile.c: pcap_check_header, pcap_ng_check_header).
const (
	magicPcap         = 0xa1b2c3d4
	magicPcapNano     = 0xa1b23c4d
	magicPcapModified = 0xa1b2cd34 // KUZNETZOV_TCPDUMP_MAGIC: 24-byte record headers
	magicPcapng       = 0x0a0d0d0a
)

// Record header sizes of pcap files (sf-pcap.c: sizeof struct
// pcap_sf_pkthdr and pcap_sf_patched_pkthdr).
const (
	pcapRecHdr         = 16
	pcapModifiedRecHdr = 24
)

// Packet is one record as libpcap reads it. Data is libpcap's buffer: valid
// until the next call to Next or Close.
type Packet struct {
	Sec     int64  // seconds since the Unix epoch (64-bit: pcapng times after 2106 stay whole)
	Nsec    int64  // nanoseconds, 0..999999999
	Caplen  uint32 // bytes captured: len(Data)
	Len     uint32 // length on the wire, as the file says (may be below Caplen)
	Data    []byte
	Start   int64 // byte offset in the file where libpcap began reading this record
	End     int64 // byte offset just past it
	Snapped bool  // libpcap cut the record to the file's snaplen (pcap files only)
}

// File is a capture file open for reading. Not safe for concurrent use.
type File struct {
	h       *C.handle
	name    string
	format  Format
	recHdr  int64
	snaplen uint32
	n       uint64 // packets read
}

// ErrUnknownFormat is wrapped by Open's error for a file that is neither
// pcap nor pcapng.
var ErrUnknownFormat = errors.New("not a pcap or pcapng file")

// Open opens path for reading; "-" is standard input. Errors do not name
// the file.
func Open(path string) (*File, error) {
	var fd int
	if path == "-" {
		d, err := dup(0)
		if err != nil {
			return nil, err
		}
		fd = d
	} else {
		f, err := os.Open(path)
		if err != nil {
			// Callers name the file; say only what went wrong.
			var pe *os.PathError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("%s: %w", pe.Op, pe.Err)
			}
			return nil, err
		}
		// The C stream takes the descriptor over; os.File must not close it.
		d, err := dup(int(f.Fd()))
		f.Close()
		if err != nil {
			return nil, err
		}
		fd = d
	}
	return OpenFD(fd, path)
}

// OpenFD reads the file descriptor fd, which it takes over (Close closes
// it); name is for messages.
func OpenFD(fd int, name string) (*File, error) {
	var errbuf [C.PCAP_ERRBUF_SIZE]C.char
	var magic [4]C.uchar
	h := C.open_fd(C.int(fd), &errbuf[0], &magic[0])
	m := binary.LittleEndian.Uint32(C.GoBytes(unsafe.Pointer(&magic[0]), 4))
	if h == nil {
		msg := C.GoString(&errbuf[0])
		if msg == "unknown file format" {
			return nil, fmt.Errorf("%w (magic %08x; libpcap: %s)", ErrUnknownFormat, m, msg)
		}
		return nil, errors.New(msg)
	}
	f := &File{h: h, name: name, recHdr: pcapRecHdr, snaplen: uint32(C.pcap_snapshot(h.p))}
	switch m {
	case magicPcapng:
		f.format = FormatPcapng
	case magicPcapModified, swap32(magicPcapModified):
		f.format, f.recHdr = FormatPcapModified, pcapModifiedRecHdr
	}
	// The header has been read; records start here.
	h.r.end = C.int64_t(C.ftello(h.fp))
	return f, nil
}

func swap32(v uint32) uint32 { return v>>24 | v>>8&0xff00 | v<<8&0xff0000 | v<<24 }

func dup(fd int) (int, error) {
	d, err := C.dup(C.int(fd))
	if d < 0 {
		return -1, fmt.Errorf("dup: %w", err)
	}
	return int(d), nil
}

// Name is the name the file was opened with.
func (f *File) Name() string { return f.name }

// Format is the file's format.
func (f *File) Format() Format { return f.format }

// LinkType is pcap_datalink: the file's link type as a DLT_ value (the same
// number as the file's LINKTYPE_ for all but a few old types), read in full.
// In a pcapng file it is the first interface's; libpcap refuses a later
// interface with another one (Next returns its error).
func (f *File) LinkType() int { return int(C.pcap_datalink(f.h.p)) }

// FCSLength is what a pcap file's link type field says of a frame check
// sequence at the end of each frame (its upper bits, pcap_datalink_ext:
// LT_FCS_LENGTH_PRESENT, LT_FCS_LENGTH in 16-bit words): the length in
// bytes, and whether the file says anything.
func (f *File) FCSLength() (int, bool) {
	ext := uint32(C.pcap_datalink_ext(f.h.p))
	if ext&0x04000000 == 0 {
		return 0, false
	}
	return int(ext>>28) * 2, true
}

// Snaplen is pcap_snapshot: the file's snapshot length as libpcap adjusted
// it (0 or too large becomes libpcap's maximum for the link type).
func (f *File) Snaplen() uint32 { return f.snaplen }

// Offset is the byte offset in the file up to which libpcap has read.
func (f *File) Offset() int64 { return int64(f.h.r.end) }

// Count is the number of packets read so far.
func (f *File) Count() uint64 { return f.n }

// RecordError is an error reading a file's record: n is the record's
// number (1-based, counting packets only), offset where libpcap began
// reading it.
type RecordError struct {
	Record uint64
	Offset int64
	Msg    string // libpcap's message
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("record %d (from byte %d): %s", e.Record, e.Offset, e.Msg)
}

// Next returns the next packet; io.EOF at the end; a *RecordError when
// libpcap refuses the record. It does not allocate.
func (f *File) Next() (Packet, error) {
	h := f.h
	switch C.next(h) {
	case 1:
	case 0:
		return Packet{}, io.EOF
	default:
		return Packet{}, &RecordError{Record: f.n + 1, Offset: int64(h.r.start), Msg: C.GoString(&h.errbuf[0])}
	}
	f.n++
	r := &h.r
	p := Packet{
		Sec: int64(r.sec), Nsec: int64(r.nsec), Caplen: uint32(r.caplen), Len: uint32(r.len),
		Start: int64(r.start), End: int64(r.end),
	}
	if r.caplen > 0 {
		p.Data = unsafe.Slice((*byte)(unsafe.Pointer(r.data)), int(r.caplen))
	}
	if f.format != FormatPcapng && p.End >= 0 && p.Start >= 0 {
		// pcap: one record header and the record's captured bytes were
		// consumed, all of them even when libpcap kept only the snaplen.
		p.Snapped = p.End-p.Start-f.recHdr > int64(p.Caplen)
	}
	return p, nil
}

// Close releases the file.
func (f *File) Close() error {
	if f.h != nil {
		C.close_handle(f.h)
		f.h = nil
	}
	return nil
}

// LinkTypeName is pcap_datalink_val_to_name: "EN10MB", "DSA_TAG_BRCM"; ""
// when libpcap does not know the type.
func LinkTypeName(dlt int) string {
	s := C.pcap_datalink_val_to_name(C.int(dlt))
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

// LinkTypeDescription is pcap_datalink_val_to_description: "Ethernet",
// "Broadcom tag"; "" when libpcap does not know the type.
func LinkTypeDescription(dlt int) string {
	s := C.pcap_datalink_val_to_description(C.int(dlt))
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

// Version is pcap_lib_version.
func Version() string { return C.GoString(C.pcap_lib_version()) }
