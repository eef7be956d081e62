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
// is rounded up to the huge page size; the tail is unused. Create makes the
// file sparse; on hugetlbfs and tmpfs the producer populates every page
// when it attaches (Ring.populate), so the ring's memory is taken then, and
// a filesystem without room for it refuses the producer at start.
//
//	header, cache line 0 (written once by Create, read-only afterwards)
//	  0   8  magic "FMCRING\x00"
//	  8   4  version (1); another version is refused with ErrVersion
//	 12   4  header size (4096)
//	 16   8  data size, a power of two, >= 4*align8(40+max caplen): four
//	         records of the largest size (Config.check, checkHeader)
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
//	         Stored in Producer.Write, loaded in Consumer.lapped: one half of
//	         the pair argued in MEMORY ORDERING.
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
//	112   8  records delivered, in total. Also the lossy consumer's half of
//	         the overrun check's ordering: stored in Consumer.lapped just
//	         before reserve is loaded, loaded by Producer.fenceLossy just after
//	         reserve is stored (MEMORY ORDERING)
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
//	 31   1  origin kind (internal/origin): 0 none, 1 GWLB, 2 mirror
//	 32   4  rule id
//	 36   1  origin length O, bytes (0 with kind 0; at most 20)
//	 37   3  reserved, zero
//	 40   …  packet data, captured length bytes,
//	 40+caplen  O bytes of origin, then zero padding to 8: record length =
//	         align8(40 + caplen + O)
//
// The origin blob, big-endian as on the wire (internal/origin):
//
//	kind 1, GWLB (GENEVE class 0x0108), O = 20:
//	  0  8  GWLB endpoint id (option type 1)
//	  8  8  attachment id (option type 2)
//	 16  4  flow cookie (option type 3)
//	kind 2, Traffic Mirroring (VXLAN), O = 7 (outer IPv4) or 19 (outer IPv6):
//	  0  3  VNI
//	  3  4 or 16  outer source address
//
// A record without origin (kind 0, O 0) is byte for byte what rings made
// before origins hold, where bytes 31 and 36..39 were reserved zero: old
// rings read as "no origin", and an old consumer reads a new ring's records
// without origin as before (one with origin fails its length check).
// Consumers check O <= 20 and the record length, nothing about the kind:
// origin.Parse does, for those that use it (the writer keeps the bytes).
// A record with origin may be up to 24 bytes longer than the largest record
// without; the data size minimum (four of those) leaves room for it.
//
// Every value read from the shared file is bounds-checked before use; a
// violated invariant is a *CorruptError, never a panic.
//
// # MEMORY ORDERING
//
// The rules are the Go memory model's: sync/atomic operations are
// sequentially consistent and an atomic load that observes an atomic store
// is synchronized after it; plain reads and writes are ordered only by
// happens-before. The processes sharing the ring are taken to be bound by
// the same rules as goroutines: true wherever sync/atomic is made of
// instructions alone (not on 32-bit MIPS, nor on ARM before GOARM=7, where
// 64-bit atomics may take a lock private to the process; atomic64_refuse.go
// stops those builds). Every shared field, with who writes it, who reads it
// and what orders it:
//
//	field              written by (how)                 read by (how)
//	header line 0      Create (plain, before the        Open (plain); the rename
//	                   rename)                          orders it before any open
//	slot name, mode    Create (plain, idem)             Open, Attach, NewProducer
//	data area          Producer.Write (plain)           Consumer.Next and the caller,
//	                                                    through Record.Data (plain)
//	head               Producer.Publish (store, last)   Consumer.fill, overrun,
//	                                                    Attach, NewProducer, Info
//	reserve            Producer.Write (store, before    Consumer.lapped, NewProducer
//	                   writing beyond the old value)
//	next seq, written, Producer.Publish (stores,        NewProducer, Info (loads;
//	drops, drop bytes  before head)                     a monitoring view)
//	closed             Producer.Close (store 1 after    Consumer.fill (load, then
//	                   its Publish), NewProducer (0)    head again), Info
//	cursor             Consumer.CommitAt (store, after  Producer.refreshTail (lossless
//	                   cursor seq)                      slots), NewProducer, Attach,
//	                                                    Info
//	cursor seq         Consumer.CommitAt (store)        Attach (after cursor), Info
//	delivered          Consumer.fill, Commit, lapped    Info; Producer.fenceLossy
//	                   (stores)                         (lossy slots; value unused)
//	overruns, missed,  Consumer.overrun, Next           Info (loads)
//	last missed range  (atomic add, stores)
//	owner words, pids  claim (CAS), release (stores)    claim, holder, Info; see OWNERS
//
// The pairs that carry records from the producer to a consumer and back:
//
//   - Publishing: the producer writes records (plain), then stores head. A
//     consumer that loads that head is synchronized after the store, so
//     every byte of the records before it happens before its reads.
//   - Freeing, lossless: the consumer reads records, then stores its cursor
//     (CommitAt; a caller committing from another goroutine must have its
//     reads happen before the call). The producer loads the cursor before
//     writing over what lies behind it, so the reads happen before the
//     overwrite. The producer never overtakes a lossless cursor.
//   - Validating, lossy: the producer does not wait for a lossy consumer; it
//     stores reserve before it writes beyond the old value, and the consumer
//     checks, after reading, that reserve has not passed verified + DataSize
//     (lapped). Reserve alone proves nothing about plain reads: they may be
//     satisfied after the load of reserve (arm64 does it; the Go memory
//     model allows it), and see bytes of the next lap while reserve still
//     reads old. So each side adds an atomic operation, a store-buffering
//     pair with reserve: the consumer stores delivered just before it loads
//     reserve; the producer loads every lossy slot's delivered just after
//     it stores reserve (fenceLossy), before it writes beyond the old value.
//
// Why that suffices, for records read from [verified, pos): let D be the
// consumer's store of delivered and L its load of reserve just after,
// seeing no more than verified + DataSize; S the producer's first store of
// a reserve above that (it writes over none of those records before S) and
// F its loads of delivered just after. All four are atomic, so they fall in
// one total order consistent with each side's program order. L saw a value
// older than S's, so L precedes S; D precedes L and F follows S, so D
// precedes F: F observes D (or a later store of that consumer), and D is
// synchronized before F. Every read of those records is sequenced before
// D, every overwrite after F: the reads happen before the overwrites and
// saw the records as published. If L sees more, the records may be torn:
// they are void and the consumer resynchronises (ErrOverrun); no value
// read is trusted before a check, and every one is bounds-checked, so a
// torn read is never a panic. A producer taking over from one that died
// writes up to the reserve it finds without storing it again: its load of
// reserve, which follows S, stands in for S, so NewProducer runs fenceLossy
// after it.
//
// The cost is one atomic store per check on the consumer (once per batch:
// Verify, and fill when it finds new records) and one load per lossy slot
// on the producer each DataSize/16 bytes; nothing on the per-record path.
package shmring
