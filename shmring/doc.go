// Package shmring is the capture ring: one producer and up to 16 consumers,
// in separate processes, sharing one memory-mapped file.
//
// The producer (fwd, or fminject) appends variable-length packet records and
// gives each a 64-bit sequence number; seq is the join key for everything
// downstream (chunk frame tables, indexes). Consumers are declared when the
// ring is created, each by name and mode, and each has a persistent cursor in
// the ring header, so a consumer that has not started yet, or is restarting,
// still holds its place:
//
//   - a lossless consumer (writer) is never overrun: when it has not freed
//     room, the producer drops the new packet and counts the drop (Live mode),
//     or waits for room (Blocking mode, used by file readers such as fminject).
//     A dropped packet gets no sequence number, so the stored sequence space is
//     dense.
//   - a lossy consumer (indexer) never holds the producer back. When the
//     producer laps it, it detects the overrun, jumps to the newest data and
//     is told exactly which sequence range it missed (Consumer.Gap).
//
// A consumer prefetches the 2 KiB ahead of the record it returns
// (internal/prefetch): where a consumer lags, records are no longer in the
// cache the producer wrote them through, and the next record's place is
// known only from this one's length, so without it a consumer that reads
// little of each record (the indexer) waits for memory at every record.
//
// # FORMAT
//
// All integers are little-endian. The file is a 4096-byte header followed by
// the data area of DataSize bytes (a power of two). On hugetlbfs the file size
// is rounded up to the huge page size; the tail is unused.
//
//	header, cache line 0 (written once by Create, read-only afterwards)
//	  0   8  magic "FMCRING\x00"
//	  8   4  version (1); another version is refused with ErrVersion
//	 12   4  header size (4096)
//	 16   8  data size, a power of two, >= 2*(40+max caplen)
//	 24   4  max caplen: the largest record payload accepted
//	 28   4  consumer count (1..16)
//	 32   8  ring id: random, fixed at creation (the store remembers it)
//	 40   8  first seq: the seq given to the first record ever written
//	 48   8  creation time, Unix ns
//	 56   4  CRC-32C of bytes 0..55: a file that merely starts with the magic is refused
//	 60   4  reserved, zero
//	producer hot line, offset 64 (written by the producer, read by everyone)
//	 64   8  head: absolute byte position just past the last published record.
//	         store-release in Producer.Publish; pairs with the load in Consumer.fill.
//	 72   8  reserve: absolute position up to which the producer may be writing
//	         now (>= head). Advanced before any byte beyond it is written, in
//	         steps of DataSize/16; lossy consumers compare it to their read
//	         position to know whether what they read can have been overwritten.
//	 80   8  next seq: seq the next record will get (published with head)
//	producer cold line, offset 128 (written by the producer, read by fmring info)
//	128   8  drops: packets refused because a lossless consumer had not freed room
//	136   8  dropped bytes (captured length of those packets)
//	144   4  closed: 1 after Producer.Close, 0 while a producer is attached
//	148   4  producer pid (0 when none is attached): a copy of the owner's
//	         pid, for display; written after the claim, cleared before release
//	152   8  records written (total, since creation)
//	160   8  producer owner: pid | start<<32 (see OWNERS below), 0 when none;
//	         claimed by CAS, cleared by the holder
//	consumer slots: slot i at offset 256 + 128*i, 128 bytes each
//	  0  32  name, NUL padded ([a-zA-Z0-9_.-], 1..31 bytes)
//	 32   4  mode: 1 lossless, 2 lossy
//	 36   4  pid of the attached process (0 when none): a copy of the
//	         owner's pid, for display
//	 40   8  owner: pid | start<<32 (see OWNERS below), 0 when none;
//	         claimed by CAS, cleared by the holder
//	 64   8  cursor: absolute byte position of the next record to read.
//	         store-release in Consumer.Commit; the producer load-acquires it
//	         (lossless slots only) when it runs short of room.
//	 72   8  cursor seq: seq of the next record expected (written with cursor)
//	 80   8  overruns: times this (lossy) consumer was lapped
//	 88   8  missed: records missed through overruns, in total
//	 96   8  first seq of the last missed range
//	104   8  last seq of the last missed range
//	112   8  records delivered, in total
//
// OWNERS: a role (the producer, each consumer slot) is held by the process
// its owner word names: its pid in the low 32 bits and the low 32 bits of
// its start time in the high 32 (clock ticks after boot, field 22 of
// /proc/PID/stat). A claimant takes the role by CAS when the word is 0 or
// names a process that is gone: no process has that pid, or the one that has
// it started at another time (the pid was reused after the holder died
// without releasing the role). Where /proc cannot tell (not mounted,
// hidepid, a start time of 0) a live pid counts as the holder. Bytes
// 40..63 of a slot and 160..167 of the header were reserved zero in rings
// made before owner words, which reads as "no owner": such rings work as
// they are.
//
// Absolute positions only grow; the byte of the data area that holds absolute
// position p is p mod DataSize. A record never wraps: when it does not fit
// before the end of the data area, the producer writes a pad marker and the
// record starts at the beginning of the next lap.
//
//	record, 8-byte aligned, in the data area
//	  0   4  record length in bytes, header and padding included, a multiple of 8;
//	         bit 31 set marks a pad: skip to the start of the next lap
//	  4   4  captured length (bytes of packet data that follow)
//	  8   8  seq
//	 16   8  capture timestamp, Unix ns
//	 24   4  wire length (length of the packet on the wire)
//	 28   2  port
//	 30   1  direction (see Dir)
//	 31   1  reserved, zero
//	 32   4  rule id
//	 36   4  reserved, zero
//	 40   …  packet data, captured length bytes, then zero padding to 8
//
// Every value read from the shared file is bounds-checked before use; a
// violated invariant is a *CorruptError, never a panic.
package shmring
