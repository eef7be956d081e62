package shmring

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

// FuzzCheckHeader: any header bytes are either a valid ring or a clear error.
func FuzzCheckHeader(f *testing.F) {
	path := filepath.Join(f.TempDir(), "r")
	if err := Create(path, Config{DataSize: 1 << 16, MaxCaplen: 1024, Consumers: []ConsumerSpec{{"w", Lossless}, {"i", Lossy}}}); err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	f.Add(good[:headerSize], uint64(len(good)))
	f.Fuzz(func(t *testing.T, hdr []byte, size uint64) {
		if len(hdr) < headerSize {
			hdr = append(hdr, make([]byte, headerSize-len(hdr))...)
		}
		// Give the fuzzer a valid checksum half the time, so it gets past it.
		if size&1 == 1 {
			binary.LittleEndian.PutUint32(hdr[offHeaderCRC:], crc32.Checksum(hdr[:headerCRCBytes], crcTable))
		}
		mem := append(hdr[:headerSize:headerSize], make([]byte, 1<<16)...)
		r, err := checkHeader("fuzz", mem, size%(1<<20))
		if err != nil {
			var ce *CorruptError
			if !errors.Is(err, ErrNotRing) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrGeometry) && !errors.As(err, &ce) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		if uint64(len(r.data)) != r.size || r.nslots < 1 || r.nslots > MaxConsumers {
			t.Fatalf("accepted bad geometry: size %d slots %d", r.size, r.nslots)
		}
	})
}

// FuzzRecords: a consumer over arbitrary data-area bytes returns records or
// errors, never panics, never reads outside the ring.
func FuzzRecords(f *testing.F) {
	f.Add(make([]byte, 4096), uint64(4096), false)
	rec := make([]byte, 64)
	binary.LittleEndian.PutUint32(rec, 48)
	binary.LittleEndian.PutUint32(rec[4:], 8)
	binary.LittleEndian.PutUint64(rec[8:], 1)
	f.Add(rec, uint64(48), true)
	orec := make([]byte, 80) // a record with a 20-byte origin after 8 bytes of data
	binary.LittleEndian.PutUint32(orec, 72)
	binary.LittleEndian.PutUint32(orec[4:], 8)
	binary.LittleEndian.PutUint64(orec[8:], 1)
	orec[31], orec[36] = 1, 20
	f.Add(orec, uint64(72), false)
	f.Fuzz(func(t *testing.T, data []byte, head uint64, lossy bool) {
		path := filepath.Join(t.TempDir(), "r")
		mode := Lossless
		if lossy {
			mode = Lossy
		}
		if err := Create(path, Config{DataSize: 4096, MaxCaplen: 256, Consumers: []ConsumerSpec{{"c", mode}}}); err != nil {
			t.Fatal(err)
		}
		r, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		copy(r.data, data)
		u64(r.mem, offHead).Store(head &^ 7 % (1 << 20))
		u64(r.mem, offReserve).Store(head &^ 7 % (1 << 20))
		u32(r.mem, offClosed).Store(1)
		c, err := r.Attach("c")
		if err != nil {
			return
		}
		for i := 0; i < 10000; i++ {
			rec, err := c.Next()
			if err != nil {
				if errors.Is(err, ErrOverrun) {
					continue
				}
				return
			}
			if len(rec.Data) > 256 || len(rec.Origin) > 20 {
				t.Fatalf("record of %d bytes, origin %d, in a ring with max caplen 256", len(rec.Data), len(rec.Origin))
			}
		}
	})
}
