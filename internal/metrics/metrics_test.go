package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fmcap/fmcap/shmring"
)

// sample is one parsed sample line: its name, its labels as written
// (unescaped, in order) and its value.
type sample struct {
	name   string
	labels string // `a="x",b="y"` after unescaping, "" without labels
	value  float64
}

func (s sample) key() string { return s.name + "{" + s.labels + "}" }

// family is one metric as exposed: HELP, TYPE and its samples.
type family struct {
	help, typ string
	samples   []sample
}

// parseExposition reads a scrape as a strict reader of the text format
// (version 0.0.4) would: every sample after its metric's HELP and TYPE
// lines, a metric's samples together (a second group of the same name is
// an error: readers such as the Python client start a new, untyped family
// there), label values with only \\, \" and \n escaped, values as Go's
// ParseFloat reads them (NaN, +Inf, -Inf included).
func parseExposition(body string) (map[string]*family, []string, error) {
	fams := map[string]*family{}
	var order []string
	var cur string // the metric whose samples are being read
	if body != "" && !strings.HasSuffix(body, "\n") {
		return nil, nil, fmt.Errorf("body does not end with a newline")
	}
	for i, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		n := i + 1
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			name, text, ok := strings.Cut(line[len("# HELP "):], " ")
			if !ok || name == "" {
				return nil, nil, fmt.Errorf("line %d: %q: no metric name and text", n, line)
			}
			f := fams[name]
			if f == nil {
				if cur != "" && len(fams[cur].samples) == 0 {
					return nil, nil, fmt.Errorf("line %d: metric %s has HELP/TYPE and no sample", n, cur)
				}
				f = &family{}
				fams[name] = f
				order = append(order, name)
				cur = name
			} else if name != cur || len(f.samples) > 0 {
				return nil, nil, fmt.Errorf("line %d: HELP/TYPE of %s again, or after its samples", n, name)
			}
			if line[2] == 'H' {
				if f.help != "" {
					return nil, nil, fmt.Errorf("line %d: second HELP for %s", n, name)
				}
				f.help = text
			} else {
				if f.typ != "" {
					return nil, nil, fmt.Errorf("line %d: second TYPE for %s", n, name)
				}
				if text != "counter" && text != "gauge" {
					return nil, nil, fmt.Errorf("line %d: type %q", n, text)
				}
				f.typ = text
			}
			continue
		}
		if line == "" || line[0] == '#' {
			return nil, nil, fmt.Errorf("line %d: %q: unexpected", n, line)
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", n, err)
		}
		if s.name != cur {
			return nil, nil, fmt.Errorf("line %d: sample of %s outside its group (the current metric is %s)", n, s.name, cur)
		}
		f := fams[cur]
		if f.help == "" || f.typ == "" {
			return nil, nil, fmt.Errorf("line %d: sample of %s before its HELP and TYPE", n, s.name)
		}
		for _, o := range f.samples {
			if o.labels == s.labels {
				return nil, nil, fmt.Errorf("line %d: %s twice", n, s.key())
			}
		}
		f.samples = append(f.samples, s)
	}
	return fams, order, nil
}

func (f *family) samplesOrNil() []sample {
	if f == nil {
		return nil
	}
	return f.samples
}

func parseSample(line string) (sample, error) {
	var s sample
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return s, fmt.Errorf("%q: no name", line)
	}
	s.name, line = line[:i], line[i:]
	if line[0] == '{' {
		var b strings.Builder
		line = line[1:]
		for {
			eq := strings.IndexByte(line, '=')
			if eq <= 0 || len(line) < eq+2 || line[eq+1] != '"' {
				return s, fmt.Errorf("%s: bad label at %q", s.name, line)
			}
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(line[:eq+2])
			line = line[eq+2:]
			j := 0
			for ; j < len(line) && line[j] != '"'; j++ {
				if line[j] == '\\' {
					j++
					if j == len(line) {
						return s, fmt.Errorf("%s: unterminated label value", s.name)
					}
					switch line[j] {
					case '\\', '"':
						b.WriteByte(line[j])
					case 'n':
						b.WriteByte('\n')
					default:
						return s, fmt.Errorf(`%s: escape \%c is not in the format`, s.name, line[j])
					}
					continue
				}
				b.WriteByte(line[j])
			}
			if j == len(line) {
				return s, fmt.Errorf("%s: unterminated label value", s.name)
			}
			b.WriteByte('"')
			line = line[j+1:]
			if strings.HasPrefix(line, ",") {
				line = line[1:]
				continue
			}
			if !strings.HasPrefix(line, "}") {
				return s, fmt.Errorf("%s: labels not closed at %q", s.name, line)
			}
			line = line[1:]
			break
		}
		s.labels = b.String()
	}
	if !strings.HasPrefix(line, " ") || strings.Count(line, " ") != 1 {
		return s, fmt.Errorf("%s: want one space then the value, got %q", s.name, line)
	}
	v, err := strconv.ParseFloat(line[1:], 64)
	if err != nil {
		return s, fmt.Errorf("%s: value: %w", s.name, err)
	}
	s.value = v
	return s, nil
}

// serve starts Serve on an ephemeral localhost port and returns the
// scrape URL; the address is the one Serve logs, so no port is guessed.
func serve(t *testing.T, ctx context.Context, collect func(*Writer)) string {
	t.Helper()
	var logBuf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := Serve(ctx, "127.0.0.1:0", log, collect); err != nil {
		t.Fatal(err)
	}
	var rec struct{ Msg, Addr string }
	if err := json.Unmarshal(logBuf.Bytes(), &rec); err != nil || rec.Msg != "serving metrics" || rec.Addr == "" {
		t.Fatalf("Serve logged %q (%v), want one serving metrics line with the address", logBuf.String(), err)
	}
	return "http://" + rec.Addr + "/metrics"
}

func scrape(t *testing.T, url string) (string, http.Header) {
	t.Helper()
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b), resp.Header
}

// The exact bytes of a scrape: HELP and TYPE once per metric, labels in
// the order given, integers without an exponent, and the figures the
// collect function reads at scrape time (not at Serve).
func TestServeExact(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var forwarded uint64
	url := serve(t, ctx, func(w *Writer) {
		forwarded++
		w.Counter("fmcap_test_forwarded_total", "Packets forwarded.", forwarded)
		w.Counter("fmcap_test_drops_total", "Drops, by reason.", 3, "reason", "no_route", "port", "p0")
		w.Counter("fmcap_test_drops_total", "", 0, "reason", "ttl", "port", "p0")
		w.Gauge("fmcap_test_ratio", "A ratio.", 0.25)
	})
	want := func(n int) string {
		return "# HELP fmcap_test_forwarded_total Packets forwarded.\n" +
			"# TYPE fmcap_test_forwarded_total counter\n" +
			fmt.Sprintf("fmcap_test_forwarded_total %d\n", n) +
			"# HELP fmcap_test_drops_total Drops, by reason.\n" +
			"# TYPE fmcap_test_drops_total counter\n" +
			`fmcap_test_drops_total{reason="no_route",port="p0"} 3` + "\n" +
			`fmcap_test_drops_total{reason="ttl",port="p0"} 0` + "\n" +
			"# HELP fmcap_test_ratio A ratio.\n" +
			"# TYPE fmcap_test_ratio gauge\n" +
			"fmcap_test_ratio 0.25\n"
	}
	for n := 1; n <= 2; n++ {
		body, h := scrape(t, url)
		if got, want := h.Get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8"; got != want {
			t.Errorf("Content-Type %q, want %q", got, want)
		}
		if body != want(n) {
			t.Fatalf("scrape %d:\n%s\nwant:\n%s", n, body, want(n))
		}
	}
}

// Callers write their figures in the order they have them (per port, then
// per rule: fwd's writeMetrics), which interleaves metrics. The scrape
// must still hold each metric's samples together after its one HELP and
// TYPE, or strict readers split it into families of their own.
func TestServeGroupsInterleavedMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := serve(t, ctx, func(w *Writer) {
		w.Counter("fmcap_test_drops_total", "Drops.", 1, "stage", "ring_full")
		for i, p := range []string{"p0", "p1"} {
			w.Counter("fmcap_test_rx_total", "Frames received.", uint64(10+i), "port", p)
			w.Counter("fmcap_test_drops_total", "", uint64(20+i), "stage", "nic", "port", p)
			w.Gauge("fmcap_test_stalled", "Stalled.", float64(i), "port", p)
		}
	})
	body, _ := scrape(t, url)
	fams, order, err := parseExposition(body)
	if err != nil {
		t.Fatalf("%v in\n%s", err, body)
	}
	if got, want := strings.Join(order, " "), "fmcap_test_drops_total fmcap_test_rx_total fmcap_test_stalled"; got != want {
		t.Errorf("metrics in order %s, want %s (first appearance)", got, want)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, s := range f.samples {
			got[s.key()] = s.value
		}
	}
	want := map[string]float64{
		`fmcap_test_drops_total{stage="ring_full"}`:     1,
		`fmcap_test_drops_total{stage="nic",port="p0"}`: 20,
		`fmcap_test_drops_total{stage="nic",port="p1"}`: 21,
		`fmcap_test_rx_total{port="p0"}`:                10,
		`fmcap_test_rx_total{port="p1"}`:                11,
		`fmcap_test_stalled{port="p0"}`:                 0,
		`fmcap_test_stalled{port="p1"}`:                 1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("samples\n%v\nwant\n%v", got, want)
	}
	// Within a metric, samples keep the order they were written in.
	var keys []string
	for _, s := range fams["fmcap_test_drops_total"].samples {
		keys = append(keys, s.labels)
	}
	if got, want := strings.Join(keys, " "), `stage="ring_full" stage="nic",port="p0" stage="nic",port="p1"`; got != want {
		t.Errorf("drops samples in order %s, want %s", got, want)
	}
}

// Values and label values as the format spells them, read back by the
// strict parser to what was written.
func TestServeValuesAndEscapes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	values := []float64{0, 1, -2, 1e15 - 1, 0.5, 1e15, -(1e15 - 1), 1.5e300, 3e-9, math.Inf(1), math.Inf(-1)}
	label := "a \"quoted\" back\\slash\nnewline é"
	url := serve(t, ctx, func(w *Writer) {
		for i, v := range values {
			w.Gauge("fmcap_test_value", "Values.", v, "i", strconv.Itoa(i))
		}
		w.Gauge("fmcap_test_nan", "Not a number.", math.NaN())
		w.Counter("fmcap_test_label", "Label escapes.", 7, "port", label)
		w.Counter("fmcap_test_max", "The largest counter.", math.MaxUint64)
	})
	body, _ := scrape(t, url)
	fams, _, err := parseExposition(body)
	if err != nil {
		t.Fatalf("%v in\n%s", err, body)
	}
	for i, s := range fams["fmcap_test_value"].samplesOrNil() {
		if s.value != values[i] {
			t.Errorf("value %d: got %v want %v", i, s.value, values[i])
		}
	}
	if n := len(fams["fmcap_test_value"].samplesOrNil()); n != len(values) {
		t.Errorf("%d values, want %d", n, len(values))
	}
	// Integers below 1e15 in magnitude are written whole, as a person
	// reads a counter; larger ones and fractions as %g.
	for _, l := range []string{`fmcap_test_value{i="3"} 999999999999999`, `fmcap_test_value{i="6"} -999999999999999`, `fmcap_test_value{i="5"} 1e+15`, `fmcap_test_value{i="9"} +Inf`, "fmcap_test_nan NaN"} {
		if !strings.Contains(body, "\n"+l+"\n") {
			t.Errorf("no line %q in\n%s", l, body)
		}
	}
	if s := fams["fmcap_test_nan"].samplesOrNil(); len(s) != 1 || !math.IsNaN(s[0].value) {
		t.Errorf("NaN sample %v", s)
	}
	if s := fams["fmcap_test_label"].samplesOrNil(); len(s) != 1 || s[0].labels != `port="`+label+`"` || s[0].value != 7 {
		t.Errorf("label sample %+v, want port=%q 7", s, label)
	}
	if s := fams["fmcap_test_max"].samplesOrNil(); len(s) != 1 || s[0].value != math.MaxUint64 {
		t.Errorf("max counter %+v", s)
	}
}

// The ring's metrics are the Info a monitor reads, per consumer; the fill
// is that of the slowest lossless consumer only (a lossy one lagging does
// not make the producer drop).
func TestRing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ring")
	cfg := shmring.Config{DataSize: 4096, MaxCaplen: 64, FirstSeq: 100, Consumers: []shmring.ConsumerSpec{
		{Name: "writer", Mode: shmring.Lossless}, {Name: "indexer", Mode: shmring.Lossy},
	}}
	if err := shmring.Create(path, cfg); err != nil {
		t.Fatal(err)
	}
	r, err := shmring.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p, err := r.NewProducer(shmring.Live)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Detach()
	wr, err := r.Attach("writer")
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()
	ix, err := r.Attach("indexer")
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	pkt := make([]byte, 64)
	write := func(n int) {
		for i := 0; i < n; i++ {
			if _, ok := p.Write(1, 64, 0, shmring.DirIngress, 1, pkt); !ok {
				t.Fatal("ring full")
			}
			p.Publish()
		}
	}
	read := func(c *shmring.Consumer, n int) {
		for i := 0; i < n; i++ {
			if _, err := c.Next(); err != nil {
				t.Fatalf("%s: %v", c.Name(), err)
			}
		}
		c.Commit()
	}
	// The writer keeps up while the producer laps the idle indexer: the
	// indexer then misses records, and learns which.
	for i := 0; i < 20; i++ {
		write(10)
		read(wr, 10)
	}
	if _, err := ix.Next(); !errors.Is(err, shmring.ErrOverrun) {
		t.Fatalf("indexer after being lapped: %v, want ErrOverrun", err)
	}
	write(1)
	read(ix, 1)
	if _, _, ok := ix.Gap(); !ok {
		t.Fatal("indexer reports no gap")
	}
	// Then the writer falls 5 records behind, the indexer 2.
	write(7)
	read(wr, 2)
	read(ix, 5)
	if err := ix.Verify(); err != nil {
		t.Fatal(err)
	}
	ix.Commit()

	in := r.Info()
	w, ixi := in.Consumers[0], in.Consumers[1]
	if w.LagRecords != 6 || ixi.LagRecords != 2 || ixi.Missed == 0 || w.LagBytes <= ixi.LagBytes || in.Written != 208 {
		t.Fatalf("ring state %+v: the test's setup is not what it means to be", in)
	}

	var buf bytes.Buffer
	mw := newWriter()
	Ring(mw, in)
	if _, err := mw.writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	fams, _, err := parseExposition(buf.String())
	if err != nil {
		t.Fatalf("%v in\n%s", err, buf.String())
	}
	got := map[string]float64{}
	for name, f := range fams {
		want := "gauge"
		if strings.HasSuffix(name, "_total") {
			want = "counter"
		}
		if f.typ != want {
			t.Errorf("%s is a %s, want %s", name, f.typ, want)
		}
		for _, s := range f.samples {
			got[s.key()] = s.value
		}
	}
	want := map[string]float64{
		`fmcap_ring_consumer_lag_bytes{consumer="writer"}`:     float64(w.LagBytes),
		`fmcap_ring_consumer_lag_bytes{consumer="indexer"}`:    float64(ixi.LagBytes),
		`fmcap_ring_consumer_lag_records{consumer="writer"}`:   6,
		`fmcap_ring_consumer_lag_records{consumer="indexer"}`:  2,
		`fmcap_ring_consumer_missed_total{consumer="writer"}`:  0,
		`fmcap_ring_consumer_missed_total{consumer="indexer"}`: float64(ixi.Missed),
		`fmcap_ring_fill_ratio{}`:                              float64(w.LagBytes) / 4096,
		`fmcap_ring_written_total{}`:                           208,
		`fmcap_ring_drops_total{}`:                             0,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ring samples\n%v\nwant\n%v\nfrom\n%s", got, want, buf.String())
	}
}

// Serve listens at once (a busy address is the caller's error, said with
// the address), serves nothing for an empty address, and stops serving
// when its context ends.
func TestServeListenAndStop(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	called := false
	if err := Serve(context.Background(), "", log, func(*Writer) { called = true }); err != nil || called {
		t.Errorf(`Serve(""): %v, collect called: %v; want nil, false`, err, called)
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	err = Serve(context.Background(), busy.Addr().String(), log, func(*Writer) {})
	if err == nil || !strings.HasPrefix(err.Error(), "metrics listen "+busy.Addr().String()+": ") || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Serve on a busy address: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	url := serve(t, ctx, func(w *Writer) { w.Counter("fmcap_test_total", "Test.", 1) })
	if body, _ := scrape(t, url); body == "" {
		t.Fatal("empty scrape")
	}
	cancel()
	// The server closes from its own goroutine: wait for it, generously.
	c := http.Client{Timeout: 5 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := c.Get(url)
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("still serving 30 s after the context ended")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSortedKeys(t *testing.T) {
	got := SortedKeys(map[string]int{"ttl": 1, "no_route": 2, "arp": 3, "Z": 4})
	if want := []string{"Z", "arp", "no_route", "ttl"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v want %v", got, want)
	}
	if got := SortedKeys(map[string]bool(nil)); len(got) != 0 {
		t.Errorf("nil map: got %v", got)
	}
}
