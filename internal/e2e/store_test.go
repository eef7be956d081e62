package e2e

import (
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fmcap/fmcap/internal/testpkt"
	"github.com/fmcap/fmcap/store/chunk"
)

var ethernetCaptures = []string{
	"ns-http.pcap", "ns-mix-nano.pcap", "ns-lo-64k.pcap", "ns-dumpcap.pcapng", "ns-unordered.pcap",
	"gopacket-ethernet.pcap", "gopacket-dns.pcap",
}

// TestRoundTripRealCaptures: fminject → writer → fmslice over everything gives
// back each real capture exactly, in every storage mode.
func TestRoundTripRealCaptures(t *testing.T) {
	need(t, "tcpdump")
	modes := map[string][]string{
		"zstd":                       nil,
		"none":                       {"--compress", "none"},
		"zstd-small-frames-rotating": {"--frame-size", "64KiB", "--chunk-size", "64KiB"},
	}
	for _, name := range ethernetCaptures {
		for mode, args := range modes {
			t.Run(name+"/"+mode, func(t *testing.T) {
				in := testdata(name)
				st := store(t, []string{in}, args...)
				got := run(t, bin("fmslice"), "--store", st, "-q")
				testpkt.DiffText(t, "whole slice", tcpdumpText(t, writeFile(t, got)), tcpdumpText(t, in))
			})
		}
	}
}

// TestPcapngOutput: --format pcapng carries the same packets and times.
func TestPcapngOutput(t *testing.T) {
	need(t, "tcpdump")
	in := testdata("ns-mix-nano.pcap")
	st := store(t, []string{in})
	got := run(t, bin("fmslice"), "--store", st, "-q", "--format", "pcapng")
	if string(got[:4]) != "\x0a\x0d\x0d\x0a" {
		t.Fatalf("not pcapng: % x", got[:4])
	}
	testpkt.DiffText(t, "pcapng slice", tcpdumpText(t, writeFile(t, got)), tcpdumpText(t, in))
}

// TestStockZstdReadsChunks: zstd -dc CHUNK | tcpdump -r - needs no other step.
func TestStockZstdReadsChunks(t *testing.T) {
	need(t, "tcpdump", "zstd")
	in := testdata("ns-lo-64k.pcap")
	st := store(t, []string{in}, "--frame-size", "64KiB")
	list, _ := chunk.List(st)
	if len(list) != 1 {
		t.Fatalf("%d chunks", len(list))
	}
	raw := run(t, "zstd", "-dc", filepath.Join(st, list[0].Name))
	testpkt.DiffText(t, "zstd -dc chunk", tcpdumpText(t, writeFile(t, raw)), tcpdumpText(t, in))
}

// TestTimeSliceMatchesEditcap: for random ranges (bounds on, between and
// around packet times, including captures whose times go backwards) the slice
// is exactly what editcap -A FROM -B TO gives.
func TestTimeSliceMatchesEditcap(t *testing.T) {
	need(t, "tcpdump", "editcap")
	rng := rand.New(rand.NewSource(7))
	for _, name := range []string{"ns-unordered.pcap", "ns-mix-nano.pcap", "ns-http.pcap"} {
		in := testdata(name)
		st := store(t, []string{in}, "--frame-size", "64KiB", "--chunk-size", "64KiB")
		ts := packetTimes(t, in)
		for i := 0; i < 12; i++ {
			a, b := ts[rng.Intn(len(ts))]+int64(rng.Intn(3)-1), ts[rng.Intn(len(ts))]+int64(rng.Intn(3)-1)
			if a > b {
				a, b = b, a
			}
			if a == b {
				b++
			}
			from, to := unixArg(a), unixArg(b)
			ref := filepath.Join(t.TempDir(), "ref.pcap")
			run(t, "editcap", "-A", from, "-B", to, in, ref)
			got := run(t, bin("fmslice"), "--store", st, "-q", "--from", from, "--to", to)
			testpkt.DiffText(t, name+" ["+from+", "+to+")", tcpdumpText(t, writeFile(t, got)), tcpdumpText(t, ref))
		}
	}
}

// TestFilteredSliceMatchesTcpdump: a filtered slice is tcpdump's output with
// the same filter over the same range.
func TestFilteredSliceMatchesTcpdump(t *testing.T) {
	need(t, "tcpdump", "editcap")
	filters := []string{
		"icmp", "icmp6", "udp", "tcp port 8080", "host 198.18.1.1 and udp", "vlan", "vlan 100 and icmp",
		"ip6 and not icmp6", "ip[6:2] & 0x1fff != 0 or ip[6] & 0x20 != 0", "not arp and not ip6",
		"greater 1000", "tcp[tcpflags] & tcp-syn != 0", "port 53", "udp and src host 192.168.1.1", "dst net 198.18.0.0/15 and (udp or icmp)",
	}
	for _, name := range []string{"ns-mix-nano.pcap", "ns-unordered.pcap", "gopacket-dns.pcap"} {
		in := testdata(name)
		st := store(t, []string{in}, "--frame-size", "64KiB")
		ts := packetTimes(t, in)
		from, to := unixArg(ts[len(ts)/5]), unixArg(ts[len(ts)*4/5])
		ranged := filepath.Join(t.TempDir(), "ranged.pcap")
		run(t, "editcap", "-A", from, "-B", to, in, ranged)
		matched := 0
		for _, f := range filters {
			ref := filepath.Join(t.TempDir(), "ref.pcap")
			run(t, "tcpdump", "--time-stamp-precision=nano", "-r", ranged, "-w", ref, f)
			got := run(t, bin("fmslice"), "--store", st, "-q", "--from", from, "--to", to, f)
			want := tcpdumpText(t, ref)
			testpkt.DiffText(t, name+" "+f, tcpdumpText(t, writeFile(t, got)), want)
			if want != "" {
				matched++
			}
		}
		if matched < 3 {
			t.Fatalf("%s: only %d filters matched anything: the comparison proves little", name, matched)
		}
	}
}

// TestSliceErrors: each bad input gets a clear message and exit status 1.
func TestSliceErrors(t *testing.T) {
	st := store(t, []string{testdata("gopacket-dns.pcap")})
	empty := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--store", st, "--from", "yesterday"}, "--from: time \"yesterday\""},
		{[]string{"--store", st, "--to", "12:00"}, "--to: time \"12:00\""},
		{[]string{"--store", st, "--from", "now", "--to", "-1h"}, "is not before"},
		{[]string{"--store", filepath.Join(empty, "nope")}, "no such file"},
		{[]string{"--store", empty}, "holds no chunks"},
		{[]string{"--store", st, "host", "and", "and"}, "filter \"host and and\""},
		{[]string{"--store", st, "--format", "json"}, "--format"},
	}
	for _, tc := range tests {
		out, stderr, code := runCode(t, bin("fmslice"), append([]string{"-w", filepath.Join(t.TempDir(), "o")}, tc.args...)...)
		if code != 1 || !strings.Contains(stderr, tc.want) || len(out) != 0 {
			t.Errorf("fmslice %v: exit %d, stderr %q; want exit 1 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestCorruptFrameIsSkipped: a damaged frame is named, skipped, the rest is
// extracted, and the exit status says the output is incomplete.
func TestCorruptFrameIsSkipped(t *testing.T) {
	need(t, "tcpdump")
	in := testdata("ns-lo-64k.pcap")
	// The smallest frames: the writer keeps a seq group (64 packets of up
	// to 64 KiB here) in one frame of up to 8 frame sizes.
	st := store(t, []string{in}, "--frame-size", "16KiB")
	list, _ := chunk.List(st)
	path := filepath.Join(st, list[0].Name)
	r, err := chunk.OpenReader(st, list[0], chunk.NewDecoder())
	if err != nil {
		t.Fatal(err)
	}
	frames := r.Table.Frames
	r.Close()
	if len(frames) < 5 {
		t.Fatalf("want several frames, got %d", len(frames))
	}
	b, _ := os.ReadFile(path)
	b[frames[2].Off+uint64(frames[2].CSize)/2] ^= 0x55
	os.WriteFile(path, b, 0o644)

	out, stderr, code := runCode(t, bin("fmslice"), "--store", st, "-q")
	if code != 3 || !strings.Contains(stderr, "frame 2") {
		t.Fatalf("exit %d, stderr %q; want 3 naming frame 2", code, stderr)
	}
	// Expected: the input without the packets of frame 2.
	skipFrom, skipTo := frames[2].FirstSeq, frames[2].LastSeq
	ref := filepath.Join(t.TempDir(), "ref.pcap")
	run(t, "editcap", "-r", in, ref, "1-"+itoa(skipFrom-1), itoa(skipTo+1)+"-"+itoa(uint64(len(packetTimes(t, in)))))
	testpkt.DiffText(t, "slice around a damaged frame", tcpdumpText(t, writeFile(t, out)), tcpdumpText(t, ref))

	// A chunk whose tables are cut off is still read, by scanning, and said so.
	os.WriteFile(path, b[:len(b)-20], 0o644)
	_, stderr, code = runCode(t, bin("fmslice"), "--store", st, "-q", "-w", filepath.Join(t.TempDir(), "o"))
	if code != 3 || !strings.Contains(stderr, "scanning") {
		t.Fatalf("cut chunk: exit %d, stderr %q", code, stderr)
	}
	// Garbage in place of a chunk: reported, never a crash.
	os.WriteFile(path, []byte("not a chunk at all, just text"), 0o644)
	_, stderr, code = runCode(t, bin("fmslice"), "--store", st, "-q", "-w", filepath.Join(t.TempDir(), "o"))
	if code != 3 || !strings.Contains(stderr, "skipped") {
		t.Fatalf("garbage chunk: exit %d, stderr %q", code, stderr)
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// TestNonEthernetRefused: fminject names the file and the link type.
func TestNonEthernetRefused(t *testing.T) {
	r := makeRing(t, "4MiB")
	_, stderr, code := runCode(t, bin("fminject"), "--ring", r, testdata("gopacket-loopback-null.pcap"))
	if code != 1 || !strings.Contains(stderr, "gopacket-loopback-null.pcap") || !strings.Contains(stderr, "not Ethernet") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = runCode(t, bin("fminject"), "--ring", r, testdata("README.md"))
	if code != 1 || !strings.Contains(stderr, "not a pcap or pcapng file") {
		t.Fatalf("text file: exit %d, stderr %q", code, stderr)
	}
}

// TestLiveSliceSeesOpenChunk: packets are visible to fmslice about a second
// after capture, while their chunk is still being written.
func TestLiveSliceSeesOpenChunk(t *testing.T) {
	need(t, "tcpdump")
	r := makeRing(t, "16MiB")
	st := filepath.Join(t.TempDir(), "store")
	w := exec.Command(bin("writer"), "--ring", r, "--store", st, "--chunk-age", "1h", "--log-level", "warn")
	w.Stderr = os.Stderr
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { w.Process.Kill(); w.Wait() }()
	in := testdata("ns-mix-nano.pcap")
	n := len(packetTimes(t, in))
	start := time.Now()
	run(t, bin("fminject"), "--ring", r, "-q", "--now", "--keep-open", in)
	var got int
	for time.Since(start) < 10*time.Second {
		out, _, code := runCode(t, bin("fmslice"), "--store", st, "-q", "--from", "-1m")
		if code == 0 {
			got = len(packetTimesBytes(t, out))
			if got == n {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got != n {
		t.Fatalf("live slice returned %d packets, want %d", got, n)
	}
	t.Logf("visible %.2fs after injection", time.Since(start).Seconds())
	list, _ := chunk.List(st)
	if len(list) != 1 || !list[0].Open {
		t.Fatalf("expected the packets to come from the open chunk, store has %+v", list)
	}
	// SIGTERM: drains, finalizes, exits 0.
	w.Process.Signal(syscall.SIGTERM)
	if err := w.Wait(); err != nil {
		t.Fatalf("writer after SIGTERM: %v", err)
	}
	list, _ = chunk.List(st)
	if len(list) != 1 || list[0].Open || list[0].LastSeq != uint64(n) {
		t.Fatalf("after SIGTERM: %+v", list)
	}
}

func packetTimesBytes(t *testing.T, pcap []byte) []int64 {
	if len(pcap) <= 24 {
		return nil
	}
	return packetTimes(t, writeFile(t, pcap))
}

// TestWriterCrash: the writer is killed with SIGKILL at random moments (and
// once stopped with SIGTERM) while a million packets are injected; after a
// final run the store holds every seq exactly once, each with its packet.
func TestWriterCrash(t *testing.T) {
	// Paced so that the kills land while packets are still coming; the
	// 16 MiB ring holds about 100k of them, so a dead writer stalls fminject.
	n, pps, rounds := 1_000_000, "300000", 8
	if testing.Short() {
		n, pps, rounds = 200_000, "100000", 4
	}
	in := genCapture(t, n)
	r := makeRing(t, "16MiB")
	st := filepath.Join(t.TempDir(), "store")
	inj := exec.Command(bin("fminject"), "--ring", r, "-q", "--pps", pps, in)
	inj.Stderr = os.Stderr
	if err := inj.Start(); err != nil {
		t.Fatal(err)
	}
	injDone := make(chan error, 1)
	var injecting atomic.Bool
	injecting.Store(true)
	go func() { err := inj.Wait(); injecting.Store(false); injDone <- err }()
	rng := rand.New(rand.NewSource(11))
	var midStream, leftOpen int
	args := []string{"--ring", r, "--store", st, "--frame-size", "64KiB", "--chunk-size", "4MiB", "--chunk-age", "300ms", "--flush", "20ms", "--log-level", "error"}
	for i := 0; i < rounds; i++ {
		w := exec.Command(bin("writer"), args...)
		w.Stderr = os.Stderr
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(50+rng.Intn(400)) * time.Millisecond)
		if i == rounds/2 {
			w.Process.Signal(syscall.SIGTERM)
			if err := w.Wait(); err != nil {
				t.Fatalf("writer after SIGTERM: %v", err)
			}
			continue
		}
		w.Process.Kill()
		w.Wait()
		if injecting.Load() {
			midStream++
		}
		if m, _ := filepath.Glob(filepath.Join(st, ".open-*")); len(m) > 0 {
			leftOpen++
		}
	}
	if midStream < rounds/2 || leftOpen == 0 {
		t.Fatalf("only %d kills hit a running injection and %d left an open chunk: the test did not exercise recovery", midStream, leftOpen)
	}
	w := exec.Command(bin("writer"), append(args, "--exit-on-close")...)
	w.Stderr = os.Stderr
	if err := w.Run(); err != nil {
		t.Fatalf("final writer: %v", err)
	}
	if err := <-injDone; err != nil {
		t.Fatalf("fminject: %v", err)
	}
	checkStore(t, st, n)
	list, _ := chunk.List(st)
	t.Logf("%d packets in %d chunks after %d kills (%d during injection, %d leaving an open chunk)", n, len(list), rounds-1, midStream, leftOpen)
}

// TestSliceSaysWhatRetentionRemoved: a query over a range that retention
// removed says so, and returns exactly the packets still stored.
func TestSliceSaysWhatRetentionRemoved(t *testing.T) {
	const n = 40000
	st := store(t, []string{genCapture(t, n)}, "--compress", "none", "--chunk-size", "256KiB", "--retain-bytes", "1MiB")
	out, stderr, code := runCode(t, bin("fmslice"), "--store", st)
	if code != 0 || !strings.Contains(stderr, "part of this range was removed by retention") || !strings.Contains(stderr, "(seq 1..") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	got := packetTimesBytes(t, out)
	if len(got) == 0 || len(got) >= n {
		t.Fatalf("%d packets returned of %d", len(got), n)
	}
	// The ones returned are the newest, all of them: the input's tail.
	want := packetTimes(t, genCapture(t, n))
	if tailWant := want[len(want)-len(got):]; !slicesEqual(got, tailWant) {
		t.Fatal("returned packets are not the newest of the input")
	}
	// A range entirely after the removed part says nothing.
	_, stderr, _ = runCode(t, bin("fmslice"), "--store", st, "--from", unixArg(got[0]), "-q")
	if strings.Contains(stderr, "retention") {
		t.Fatalf("note for a range retention did not touch: %s", stderr)
	}
}

func slicesEqual(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
