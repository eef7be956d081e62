package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fmcap/fmcap/internal/libpcap"
	"github.com/fmcap/fmcap/internal/libpcap/pcapcraft"
	"github.com/fmcap/fmcap/internal/testpkt"
	"github.com/fmcap/fmcap/shmring"
)

// The tests run fminject itself: the test binary re-executes as fminject
// when this variable is set.
const asFminject = "FMINJECT_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asFminject) != "" {
		os.Args = append([]string{"fminject"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func intake(name string) string { return filepath.Join("..", "..", "testdata", "intake", name) }
func real(name string) string   { return filepath.Join("..", "..", "testdata", name) }

// fminject runs the command with stdin and returns its stderr and exit code.
func fminject(t *testing.T, stdin []byte, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asFminject+"=1")
	var e bytes.Buffer
	cmd.Stderr = &e
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return e.String(), 0
	case errors.As(err, &ee):
		return e.String(), ee.ExitCode()
	}
	t.Fatal(err)
	return "", 0
}

func newRing(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ring")
	if err := shmring.Create(path, shmring.Config{DataSize: 8 << 20, Consumers: []shmring.ConsumerSpec{{Name: "writer", Mode: shmring.Lossless}}}); err != nil {
		t.Fatal(err)
	}
	return path
}

type rec struct {
	ts      int64
	wireLen uint32
	data    []byte
}

// ringRecords reads everything in the ring, as the writer would.
func ringRecords(t *testing.T, path string) []rec {
	t.Helper()
	r, err := shmring.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := r.Attach("writer")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out []rec
	for {
		x, err := c.Next()
		if err != nil {
			if !errors.Is(err, shmring.ErrEmpty) && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			return out
		}
		out = append(out, rec{x.TS, x.WireLen, bytes.Clone(x.Data)})
	}
}

// asPcap writes records as a nanosecond pcap, the way the store does
// (seconds cut to 32 bits, which is also what tcpdump -w does with the
// times of the original).
func asPcap(t *testing.T, recs []rec) string {
	var rs []pcapcraft.Rec
	for _, r := range recs {
		rs = append(rs, pcapcraft.Rec{Sec: uint32(r.ts / 1e9), Frac: uint32(r.ts % 1e9), Caplen: uint32(len(r.data)), Len: r.wireLen, Data: r.data})
	}
	p := filepath.Join(t.TempDir(), "ring.pcap")
	if err := os.WriteFile(p, pcapcraft.Pcap(pcapcraft.MagicNano, 262144, 1, rs...), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func need(t *testing.T, tool string) {
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s not installed (scripts/deps.sh test installs it)", tool)
	}
}

// tcpdumpText is tcpdump's reading of a file: every byte, length and
// nanosecond it shows, stopping where libpcap stops.
func tcpdumpText(t *testing.T, file string) string {
	out, _ := exec.Command("tcpdump", "--time-stamp-precision=nano", "-nn", "-tt", "-e", "-x", "-r", file).Output()
	return string(out)
}

// TestRingHoldsWhatTcpdumpReads: for crafted and real captures, what
// fminject puts into the ring is, packet for packet, what tcpdump reads
// from the file (bytes, lengths, times as tcpdump shows them), and the
// notes say what libpcap's reading changed.
func TestRingHoldsWhatTcpdumpReads(t *testing.T) {
	need(t, "tcpdump")
	cases := []struct {
		file  string
		notes []string
	}{
		{intake("overlong.pcap"), []string{"2 records longer than the snaplen were truncated, as libpcap does", "1 records have more captured bytes than their wire length"}},
		{intake("far-future.pcapng"), nil},
		{intake("ng-snaplen0.pcapng"), nil},
		{intake("after-2038.pcap"), nil},
		{real("ns-http.pcap"), nil},
		{real("ns-mix-nano.pcap"), nil},
		{real("ns-dumpcap.pcapng"), nil},
		{real("ns-lo-64k.pcap"), nil},
		{real("gopacket-dns.pcap"), nil},
	}
	for _, tc := range cases {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			ring := newRing(t)
			stderr, code := fminject(t, nil, "--ring", ring, "-q", tc.file)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			for _, n := range tc.notes {
				if !strings.Contains(stderr, n) {
					t.Errorf("stderr %q lacks %q", stderr, n)
				}
			}
			if tc.notes == nil && stderr != "" {
				t.Errorf("stderr %q, want nothing with -q", stderr)
			}
			want := tcpdumpText(t, tc.file)
			if want == "" {
				t.Fatal("tcpdump reads nothing")
			}
			testpkt.DiffText(t, "ring", tcpdumpText(t, asPcap(t, ringRecords(t, ring))), want)
		})
	}
}

// TestTimesWhole: times are passed on whole, after 2038 in pcap and after
// 2106 in pcapng (tcpdump shows only 32 bits of seconds: tshark is the
// reference); only what int64 nanoseconds cannot hold is saturated, and
// said.
func TestTimesWhole(t *testing.T) {
	need(t, "tshark")
	for _, name := range []string{"far-future.pcapng", "after-2038.pcap", "beyond-2262.pcapng", "overlong.pcap"} {
		t.Run(name, func(t *testing.T) {
			ring := newRing(t)
			stderr, code := fminject(t, nil, "--ring", ring, "-q", intake(name))
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			out, err := exec.Command("tshark", "-r", intake(name), "-T", "fields", "-e", "frame.time_epoch").Output()
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Fields(string(out))
			got := ringRecords(t, ring)
			if len(got) != len(want) {
				t.Fatalf("%d packets, tshark reads %d", len(got), len(want))
			}
			saturated := 0
			for i, r := range got {
				s := fmt.Sprintf("%d.%09d", r.ts/1e9, r.ts%1e9)
				if r.ts == math.MaxInt64 {
					saturated++
					continue
				}
				if s != want[i] {
					t.Errorf("packet %d: %s, tshark reads %s", i+1, s, want[i])
				}
			}
			if saturated > 0 && !strings.Contains(stderr, fmt.Sprintf("%d packet times lie beyond 1677..2262", saturated)) {
				t.Errorf("%d saturated, stderr %q", saturated, stderr)
			}
		})
	}
}

// TestRefused: a file libpcap refuses anywhere, or that is not Ethernet,
// injects nothing; the message names the file, the record and the byte
// where libpcap stopped, or the link type by name and number.
func TestRefused(t *testing.T) {
	dir := t.TempDir()
	craft := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	// Ethernet packets before the second interface: libpcap returns them,
	// then refuses the interface; the first pass keeps them out of the ring.
	mixedLate := pcapcraft.SHB()
	mixedLate = append(mixedLate, pcapcraft.IDB(pcapcraft.Iface{LinkType: 1})...)
	for i := 0; i < 3; i++ {
		mixedLate = append(mixedLate, pcapcraft.EPB(pcapcraft.P(0, uint64(i), pcapcraft.Frame(60, byte(i)), 60))...)
	}
	mixedLate = append(mixedLate, pcapcraft.IDB(pcapcraft.Iface{LinkType: 276})...)
	mixedLate = append(mixedLate, pcapcraft.EPB(pcapcraft.P(1, 9, pcapcraft.Frame(60, 9), 60))...)
	dsa := func(lt uint32) string {
		return craft(fmt.Sprintf("lt%d.pcap", lt), pcapcraft.Pcap(pcapcraft.MagicMicro, 65535, lt, pcapcraft.R(1, 0, pcapcraft.Frame(64, 1), 64)))
	}
	cases := []struct {
		files []string
		want  []string
	}{
		{[]string{intake("truncated.pcap")}, []string{"truncated.pcap: record 3 (from byte 196): truncated dump file; tried to read 100 captured bytes, only got 60"}},
		{[]string{intake("over-max.pcap")}, []string{"over-max.pcap: record 2 (from byte 100): invalid packet capture length 300000"}},
		{[]string{intake("ng-overlong.pcapng")}, []string{"ng-overlong.pcapng: record 2 (from byte 140): invalid packet capture length 200, bigger than snaplen of 128"}},
		{[]string{intake("mixed-linktypes.pcapng")}, []string{"mixed-linktypes.pcapng: record 1", "different link types (EN10MB (1, Ethernet) first, then LINUX_SLL (113, Linux cooked v1))"}},
		{[]string{craft("mixed-late.pcapng", mixedLate)}, []string{"mixed-late.pcapng: record 4 (from byte", "then LINUX_SLL2 (276, Linux cooked v2)"}},
		{[]string{intake("linktype-257.pcap")}, []string{"linktype-257.pcap: link type PROFIBUS_DL (257, PROFIBUS data link layer) is not Ethernet"}},
		{[]string{intake("dsa-brcm.pcap")}, []string{"link type DSA_TAG_BRCM (281, Broadcom tag) is not Ethernet: each frame carries a 4-byte Broadcom switch tag", "misread"}},
		{[]string{dsa(282)}, []string{"link type DSA_TAG_BRCM_PREPEND (282, ", "Broadcom switch tag, before the destination address"}},
		{[]string{dsa(284)}, []string{"link type DSA_TAG_DSA (284, Marvell DSA) is not Ethernet: each frame carries a 4-byte Marvell DSA tag"}},
		{[]string{dsa(285)}, []string{"link type DSA_TAG_EDSA (285, Marvell EDSA) is not Ethernet: each frame carries an 8-byte Marvell EDSA tag"}},
		{[]string{dsa(113)}, []string{"link type LINUX_SLL (113, Linux cooked v1) is not Ethernet", "\"any\" device"}},
		{[]string{real("gopacket-loopback-null.pcap")}, []string{"gopacket-loopback-null.pcap: link type NULL (0, BSD loopback) is not Ethernet"}},
		{[]string{real("README.md")}, []string{"README.md: not a pcap or pcapng file"}},
		// A good file before a bad one: nothing from either.
		{[]string{intake("overlong.pcap"), intake("truncated.pcap")}, []string{"truncated.pcap: record 3"}},
	}
	for _, tc := range cases {
		t.Run(filepath.Base(tc.files[len(tc.files)-1]), func(t *testing.T) {
			ring := newRing(t)
			stderr, code := fminject(t, nil, append([]string{"--ring", ring}, tc.files...)...)
			if code != 1 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			if n := len(ringRecords(t, ring)); n != 0 {
				t.Errorf("%d packets in the ring, want none", n)
			}
		})
	}
}

// TestStdinSaysWhatWasProduced: standard input has no first pass; its
// packets up to libpcap's error are produced, and fminject says how many.
func TestStdinSaysWhatWasProduced(t *testing.T) {
	need(t, "tcpdump")
	b, err := os.ReadFile(intake("truncated.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	ring := newRing(t)
	stderr, code := fminject(t, b, "--ring", ring, "-q", "-")
	if code != 1 || !strings.Contains(stderr, "standard input: record 3 (from byte 196): truncated dump file") ||
		!strings.Contains(stderr, "2 packets of standard input were produced before this error (2 in all)") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	testpkt.DiffText(t, "ring", tcpdumpText(t, asPcap(t, ringRecords(t, ring))), tcpdumpText(t, intake("truncated.pcap")))

	stderr, code = fminject(t, b, "--ring", ring, "--loop", "2", "-")
	if code != 1 || !strings.Contains(stderr, "standard input is not a regular file and can be read only once") {
		t.Fatalf("--loop 2 from stdin: exit %d, stderr %q", code, stderr)
	}
}

// TestLoopAndFlags: --loop repeats, the notes count every truncation
// produced, --now restamps, and the summary says what was injected.
func TestLoopAndFlags(t *testing.T) {
	ring := newRing(t)
	stderr, code := fminject(t, nil, "--ring", ring, "--loop", "3", "--now", "--port", "7", intake("overlong.pcap"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, w := range []string{"6 records longer than the snaplen were truncated", "18 packets injected, 0 dropped"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q lacks %q", stderr, w)
		}
	}
	if strings.Contains(stderr, "\r") {
		t.Errorf("progress drawn on a stderr that is not a terminal: %q", stderr)
	}
	recs := ringRecords(t, ring)
	if len(recs) != 18 {
		t.Fatalf("%d packets, want 18", len(recs))
	}
	if d := time.Since(time.Unix(0, recs[0].ts)); d < 0 || d > time.Minute {
		t.Errorf("--now: first packet stamped %v ago", d)
	}
}

// TestNanos: pcap's unsigned 32-bit seconds, pcapng's 64-bit ones, and
// saturation only beyond int64 nanoseconds.
func TestNanos(t *testing.T) {
	cases := []struct {
		sec, nsec int64
		pcapng    bool
		want      int64
		sat       uint64
	}{
		{1_700_000_000, 5, false, 1_700_000_000_000_000_005, 0},
		{-1, 0, false, (1<<32 - 1) * 1e9, 0}, // libpcap 1.10's reading of 0xffffffff
		{-1, 0, true, -1e9, 0},
		{1 << 32, 7, true, (1<<32)*1e9 + 7, 0},
		{9_223_372_036, 854_775_807, true, math.MaxInt64, 0},
		{9_223_372_036, 854_775_808, true, math.MaxInt64, 1},
		{10_413_792_000, 0, true, math.MaxInt64, 1},
		{-9_223_372_037, 0, true, math.MinInt64, 1},
	}
	for _, tc := range cases {
		var c counts
		p := libpcap.Packet{Sec: tc.sec, Nsec: tc.nsec}
		if got := nanos(&p, tc.pcapng, &c); got != tc.want || c.saturated != tc.sat {
			t.Errorf("nanos(%d.%09d, pcapng %v) = %d (%d saturated), want %d (%d)", tc.sec, tc.nsec, tc.pcapng, got, c.saturated, tc.want, tc.sat)
		}
	}
}

func TestProgressLine(t *testing.T) {
	p := &progress{what: "injected", total: 1000}
	p.done.Store(250)
	if got, want := p.line(2*time.Second), "fminject: injected 250/1000 packets (25%), 125 packets/s, 6s left"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	p = &progress{what: "checking f:", bytes: true, total: 400 << 20}
	p.done.Store(100 << 20)
	if got, want := p.line(2*time.Second), "fminject: checking f: 100/400 MB (25%), 50 MB/s, 6s left"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	p = &progress{what: "injected"}
	p.done.Store(300)
	if got, want := p.line(3*time.Second), "fminject: injected 300 packets, 100 packets/s"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestMixedHintWorks: the command the refusal of a mixed pcapng suggests
// gives a file fminject takes, holding the file's Ethernet packets.
func TestMixedHintWorks(t *testing.T) {
	need(t, "tshark")
	need(t, "editcap")
	need(t, "tcpdump")
	ring := newRing(t)
	stderr, _ := fminject(t, nil, "--ring", ring, intake("mixed-linktypes.pcapng"))
	_, hint, ok := strings.Cut(stderr, "To inject the Ethernet packets alone: ")
	if !ok {
		t.Fatalf("no hint in %q", stderr)
	}
	dir := t.TempDir()
	hint = strings.TrimSpace(strings.ReplaceAll(hint, "FILE", intake("mixed-linktypes.pcapng")))
	hint = strings.ReplaceAll(hint, "ether.pcap", filepath.Join(dir, "ether.pcap"))
	if out, err := exec.Command("sh", "-c", hint).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", hint, err, out)
	}
	out := filepath.Join(dir, "ether.pcap")
	if stderr, code := fminject(t, nil, "--ring", ring, "-q", out); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	recs := ringRecords(t, ring)
	if len(recs) != 2 {
		t.Fatalf("%d packets, want the 2 Ethernet ones", len(recs))
	}
	testpkt.DiffText(t, "ring", tcpdumpText(t, asPcap(t, recs)), tcpdumpText(t, out))
}

// TestFCSNoted: a pcap whose link type field says frames end with an FCS
// is stored (the bytes are Ethernet frames), and fminject says what the
// store loses.
func TestFCSNoted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fcs.pcap")
	os.WriteFile(path, pcapcraft.Pcap(pcapcraft.MagicNano, 65535, 0x24000001, pcapcraft.R(1, 0, pcapcraft.Frame(64, 1), 64)), 0o644)
	ring := newRing(t)
	stderr, code := fminject(t, nil, "--ring", ring, "-q", path)
	if code != 0 || !strings.Contains(stderr, "fcs.pcap says each frame ends with a 4-byte FCS") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if n := len(ringRecords(t, ring)); n != 1 {
		t.Fatalf("%d packets, want 1", n)
	}
}

// TestProgressDraws: the drawing goroutine shows the count it is given
// and clears its line when ended.
func TestProgressDraws(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := startProgress(w, true, "injected", 10, false)
	p.set(5)
	time.Sleep(progressEvery + 100*time.Millisecond)
	p.end()
	w.Close()
	out, _ := io.ReadAll(r)
	if !strings.Contains(string(out), "\r\033[Kfminject: injected 5/10 packets (50%)") || !strings.HasSuffix(string(out), "\r\033[K") {
		t.Fatalf("drew %q", out)
	}
	if startProgress(w, false, "x", 0, false) != nil {
		t.Fatal("progress when disabled")
	}
}
