package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fmcap/fmcap/shmring"
)

// The tests run fmring itself: the test binary re-executes as fmring when
// this variable is set, so main's exit status and output are what is
// checked.
const asFmring = "FMRING_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asFmring) != "" {
		os.Args = append([]string{"fmring"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fmring runs the command with env added to an environment cleared of
// fmcap's variables (a developer's FMCAP_RING_PATH must not steer it),
// and returns its stdout, stderr and exit status.
func fmring(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "FMCAP_") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(append(cmd.Env, asFmring+"=1"), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// ok runs a command that must succeed silently on stderr.
func ok(t *testing.T, env []string, args ...string) string {
	t.Helper()
	stdout, stderr, code := fmring(t, env, args...)
	if code != 0 || stderr != "" {
		t.Fatalf("fmring %s: exit %d, stderr %q", strings.Join(args, " "), code, stderr)
	}
	return stdout
}

// fails runs a command that must fail with status 1, nothing on stdout,
// and stderr "fmring: " followed by want.
func fails(t *testing.T, want string, args ...string) {
	t.Helper()
	stdout, stderr, code := fmring(t, nil, args...)
	if code != 1 || stdout != "" || stderr != "fmring: "+want+"\n" {
		t.Errorf("fmring %s: exit %d, stdout %q, stderr %q; want 1, nothing, %q", strings.Join(args, " "), code, stdout, stderr, "fmring: "+want)
	}
}

func open(t *testing.T, path string) *shmring.Ring {
	t.Helper()
	r, err := shmring.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// dirList is what a directory holds: a failed create must leave nothing,
// not even its temporary file.
func dirList(t *testing.T, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

// The ring fmring creates is the one asked for, private to its owner
// (it holds captured packets).
func TestCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ring")
	if out := ok(t, nil, "create", "--ring", path, "--size", "2MiB", "--max-caplen", "1500", "--first-seq", "42",
		"--consumer", "writer:lossless", "--consumer", "indexer:lossy"); out != "" {
		t.Errorf("create printed %q", out)
	}
	in := open(t, path).Info()
	want := []shmring.ConsumerInfo{{Name: "writer", Mode: shmring.Lossless, CursorSeq: 42}, {Name: "indexer", Mode: shmring.Lossy, CursorSeq: 42}}
	if in.DataSize != 2<<20 || in.MaxCaplen != 1500 || in.FirstSeq != 42 || in.NextSeq != 42 || !reflect.DeepEqual(in.Consumers, want) {
		t.Errorf("ring %+v", in)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("ring file: %v, mode %v; want 0600", err, st.Mode())
	}
	if got := dirList(t, filepath.Dir(path)); got != "ring" {
		t.Errorf("directory holds %q, want the ring alone", got)
	}

	// The defaults: 256 MiB, the default max caplen, seq 1. (The file is
	// sparse: nothing is written to its data area.)
	def := filepath.Join(t.TempDir(), "ring")
	ok(t, nil, "create", "--ring", def, "--consumer", "writer:lossless")
	in = open(t, def).Info()
	if in.DataSize != 256<<20 || in.MaxCaplen != shmring.DefaultMaxCaplen || in.FirstSeq != 1 || len(in.Consumers) != 1 {
		t.Errorf("defaults: ring %+v", in)
	}
}

// table lays rows out as text/tabwriter does for fmring info: each column
// as wide as its widest cell plus two spaces, the last cell unpadded.
func table(rows [][]string) string {
	w := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r[:len(r)-1] {
			w[i] = max(w[i], len(c)+2)
		}
	}
	var b strings.Builder
	for _, r := range rows {
		for i, c := range r[:len(r)-1] {
			fmt.Fprintf(&b, "%-*s", w[i], c)
		}
		b.WriteString(r[len(r)-1] + "\n")
	}
	return b.String()
}

// info shows a ring in use: the producer's position and counters, each
// consumer's cursor and lag, and a lossy consumer's losses with the last
// range it missed.
func TestInfo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ring")
	ok(t, nil, "create", "--ring", path, "--size", "4KiB", "--max-caplen", "64", "--first-seq", "100",
		"--consumer", "writer:lossless", "--consumer", "indexer:lossy")
	r := open(t, path)
	p, err := r.NewProducer(shmring.Live)
	if err != nil {
		t.Fatal(err)
	}
	wr, err := r.Attach("writer")
	if err != nil {
		t.Fatal(err)
	}
	ix, err := r.Attach("indexer")
	if err != nil {
		t.Fatal(err)
	}
	pkt := make([]byte, 64)
	write := func(n int) {
		for i := 0; i < n; i++ {
			if _, written := p.Write(1, 64, 0, shmring.DirIngress, 1, pkt); !written {
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
		if err := c.Verify(); err != nil {
			t.Fatal(err)
		}
		c.Commit()
	}
	// The writer keeps up while the producer laps the idle indexer, which
	// then misses seqs 100..299 (it read none of them) and resumes at 300.
	for i := 0; i < 20; i++ {
		write(10)
		read(wr, 10)
	}
	if _, err := ix.Next(); !errors.Is(err, shmring.ErrOverrun) {
		t.Fatalf("indexer after being lapped: %v, want ErrOverrun", err)
	}
	write(1)
	read(ix, 1)
	// Then the writer falls 6 records behind, the indexer 2.
	write(7)
	read(wr, 2)
	read(ix, 5)
	wr.Close()
	ix.Close()
	p.Close()

	in := r.Info()
	if in.Written != 208 || in.NextSeq != 308 || !in.Closed || in.Consumers[0].LagRecords != 6 || in.Consumers[1].LagRecords != 2 ||
		in.Consumers[1].Missed != 200 || in.Consumers[1].LastMissLo != 100 || in.Consumers[1].LastMissHi != 299 {
		t.Fatalf("ring %+v: not the state the test means to show", in)
	}
	stdout := ok(t, nil, "info", "--ring", path)
	d := func(v uint64) string { return fmt.Sprint(v) }
	w, x := in.Consumers[0], in.Consumers[1]
	want := "ring        " + path + "\n" +
		fmt.Sprintf("id          %016x  version %d  created %s\n", in.ID, shmring.Version, in.Created.UTC().Format("2006-01-02T15:04:05Z")) +
		"geometry    data 4096 bytes, max caplen 64, first seq 100\n" +
		fmt.Sprintf("producer    pid 0, closed, head %d, next seq 308, written 208, drops 0 (0 bytes)\n", in.Head) +
		table([][]string{
			{"consumer", "mode", "pid", "cursor", "next seq", "lag records", "lag bytes", "delivered", "overruns", "missed", "last missed"},
			{"writer", "lossless", "0", d(w.Cursor), "302", "6", d(w.LagBytes), "202", "0", "0", "-"},
			{"indexer", "lossy", "0", d(x.Cursor), "306", "2", d(x.LagBytes), "6", d(x.Overruns), "200", "100..299"},
		})
	if stdout != want {
		t.Errorf("info:\n%s\nwant:\n%s", stdout, want)
	}
	// The created time is the ring's, within reason of now (a wrong
	// clock or a unit error would be far off).
	if age := time.Since(in.Created); age < 0 || age > time.Hour {
		t.Errorf("created %v, %v ago", in.Created, age)
	}

	// --json: the same Info, its keys the Go field names programs use.
	stdout = ok(t, nil, "info", "--ring", path, "--json")
	var got shmring.Info
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("info --json: %v in %q", err, stdout)
	}
	if !got.Created.Equal(in.Created) {
		t.Errorf("--json created %v, want %v", got.Created, in.Created)
	}
	got.Created = in.Created
	if !reflect.DeepEqual(got, in) {
		t.Errorf("info --json:\n%+v\nwant\n%+v", got, in)
	}
	var keys map[string]json.RawMessage
	json.Unmarshal([]byte(stdout), &keys)
	var names []string
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	if got, want := strings.Join(names, " "), "Closed Consumers Created DataSize DropBytes Drops FirstSeq Head ID MaxCaplen NextSeq Path ProducerPID Version Written"; got != want {
		t.Errorf("info --json keys %s, want %s", got, want)
	}
}

// destroy removes a ring no process holds; then the ring is gone, and
// info and destroy say how to create it.
func TestDestroy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ring")
	ok(t, nil, "create", "--ring", path, "--size", "2MiB", "--consumer", "writer:lossless")
	if out := ok(t, nil, "destroy", "--ring", path); out != "" {
		t.Errorf("destroy printed %q", out)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after destroy: %v", err)
	}
	hint := fmt.Sprintf("ring %s does not exist: create it first with\n"+
		"  fmring create --ring %s --size 256MiB --consumer writer:lossless --consumer indexer:lossy\n"+
		"(or fmring create --config FILE, whose ring: section declares them)", path, path)
	fails(t, hint, "destroy", "--ring", path)
	fails(t, hint, "info", "--ring", path)
	fails(t, "--ring PATH is required (or ring.path in --config)", "destroy")
	fails(t, "--ring PATH is required (or ring.path in --config)", "info")
}

// A ring a live process is attached to stays: destroy names the role and
// the process (here the test itself).
func TestDestroyAttached(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ring")
	ok(t, nil, "create", "--ring", path, "--size", "2MiB", "--consumer", "writer:lossless")
	r := open(t, path)
	c, err := r.Attach("writer")
	if err != nil {
		t.Fatal(err)
	}
	fails(t, fmt.Sprintf("ring %q: consumer writer (pid %d) is attached; stop it first", path, os.Getpid()), "destroy", "--ring", path)
	c.Close()
	p, err := r.NewProducer(shmring.Live)
	if err != nil {
		t.Fatal(err)
	}
	fails(t, fmt.Sprintf("ring %q: producer pid %d is attached; stop it first", path, os.Getpid()), "destroy", "--ring", path)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the ring was removed: %v", err)
	}
	p.Detach()
	ok(t, nil, "destroy", "--ring", path)
}

// Create refuses what would not make a usable ring, and leaves nothing.
func TestCreateErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // after the ring path, when it is %q-ed into the message
	}{
		{[]string{"--size", "1000", "--consumer", "w:lossless"}, `create ring %q: data size 1000 is not a power of two`},
		{[]string{"--size", "0", "--consumer", "w:lossless"}, `create ring %q: data size 0 is not a power of two`},
		{[]string{"--size", "12XB", "--consumer", "w:lossless"}, `--size: size "12XB": unknown unit (use KiB, MiB, GiB, TiB, KB, MB, GB, TB)`},
		{[]string{"--size", "MiB", "--consumer", "w:lossless"}, `--size: size "MiB": no number`},
		{[]string{"--size", "4KiB", "--max-caplen", "1500", "--consumer", "w:lossless"}, `create ring %q: data size 4096 too small for max caplen 1500: need at least 6176`},
		{nil, `declare at least one --consumer NAME:lossless|lossy (or ring.consumers in --config)`},
		{[]string{"--consumer", "writer:fast"}, `--consumer "writer:fast": give NAME:lossless or NAME:lossy`},
		{[]string{"--consumer", "writer"}, `--consumer "writer": give NAME:lossless or NAME:lossy`},
		{[]string{"--consumer", "w:lossless", "--consumer", "w:lossy"}, `create ring %q: consumer "w" declared twice`},
		{[]string{"--consumer", "a/b:lossless"}, `create ring %q: consumer name "a/b": use 1 to 31 of [a-zA-Z0-9_.-]`},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "ring")
		want := tc.want
		if strings.Contains(want, "%q") {
			want = fmt.Sprintf(want, path)
		}
		fails(t, want, append([]string{"create", "--ring", path}, tc.args...)...)
		if got := dirList(t, dir); got != "" {
			t.Errorf("%v left %q", tc.args, got)
		}
	}
}

// Destroying a ring is a decision, never a side effect of create: an
// existing file, ring or not, is left as it was.
func TestCreateExisting(t *testing.T) {
	dir := t.TempDir()
	ring := filepath.Join(dir, "ring")
	ok(t, nil, "create", "--ring", ring, "--size", "2MiB", "--consumer", "writer:lossless")
	id := open(t, ring).ID()
	other := filepath.Join(dir, "notes")
	if err := os.WriteFile(other, []byte("not a ring\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{ring, other} {
		fails(t, fmt.Sprintf("create ring %q: file exists (destroy it first)", path),
			"create", "--ring", path, "--size", "2MiB", "--consumer", "writer:lossless")
	}
	if b, err := os.ReadFile(other); err != nil || string(b) != "not a ring\n" {
		t.Errorf("the other file now holds %q (%v)", b, err)
	}
	if got := open(t, ring).ID(); got != id {
		t.Errorf("ring id %x, want %x: the ring was replaced", got, id)
	}
	if got := dirList(t, dir); got != "notes ring" {
		t.Errorf("directory holds %q", got)
	}
}

// --exist-ok (a service's start) accepts the ring it would create, and
// nothing else.
func TestCreateExistOK(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ring")
	args := []string{"create", "--exist-ok", "--ring", path, "--size", "2MiB", "--max-caplen", "1500", "--consumer", "writer:lossless", "--consumer", "indexer:lossy"}
	ok(t, nil, args...)
	id := open(t, path).ID()
	ok(t, nil, args...)
	differ := fmt.Sprintf("ring %s exists with another geometry or consumers (fmring info shows it; fmring destroy, then create, to change it)", path)
	for _, change := range [][]string{
		{"--size", "128KiB"},
		{"--max-caplen", "9000"},
		{"--consumer", "writer:lossless"}, // the indexer left out
		{"--consumer", "writer:lossless", "--consumer", "indexer:lossless"},
		{"--consumer", "indexer:lossy", "--consumer", "writer:lossless"},
	} {
		a := []string{"create", "--exist-ok", "--ring", path, "--size", "2MiB", "--max-caplen", "1500"}
		if change[0] != "--consumer" {
			a = append(a, "--consumer", "writer:lossless", "--consumer", "indexer:lossy")
		}
		fails(t, differ, append(a, change...)...)
	}
	if got := open(t, path).ID(); got != id {
		t.Errorf("ring id %x, want %x: the ring was replaced", got, id)
	}
	// A file that is no ring is not taken for one.
	notRing := filepath.Join(t.TempDir(), "ring")
	os.WriteFile(notRing, []byte("x"), 0o644)
	fails(t, fmt.Sprintf("create ring %q: file exists (destroy it first)", notRing),
		"create", "--exist-ok", "--ring", notRing, "--size", "2MiB", "--consumer", "writer:lossless")
}

// A file that is not a ring: info says so, and destroy leaves it.
func TestNotARing(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content []byte
		want    string
	}{
		{"short", []byte("hello\n"), "open ring %q: not an fmcap ring (file is 6 bytes, shorter than a ring header)"},
		{"zeros", make([]byte, 64<<10), "open ring %q: not an fmcap ring (bad magic)"},
	} {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, tc.content, 0o644); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(tc.want, path)
		fails(t, want, "info", "--ring", path)
		fails(t, want, "destroy", "--ring", path)
		if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, tc.content) {
			t.Errorf("%s: destroy touched the file (%v)", tc.name, err)
		}
	}
}

// The configuration file's ring: section gives create everything, and
// info and destroy the path; flags win over it; FMCAP_RING_PATH names
// the ring too.
func TestConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ring")
	cfg := filepath.Join(dir, "fmcap.yaml")
	if err := os.WriteFile(cfg, []byte("ring:\n  path: "+path+"\n  size: 2MiB\n  max_caplen: 256\n  first_seq: 9\n  consumers: [writer:lossless, indexer:lossy]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ok(t, nil, "create", "--config", cfg, "--max-caplen", "512")
	in := open(t, path).Info()
	if in.DataSize != 2<<20 || in.MaxCaplen != 512 || in.FirstSeq != 9 || len(in.Consumers) != 2 || in.Consumers[1].Name != "indexer" || in.Consumers[1].Mode != shmring.Lossy {
		t.Errorf("ring from the configuration: %+v", in)
	}
	if out := ok(t, nil, "info", "--config", cfg); !strings.HasPrefix(out, "ring        "+path+"\n") {
		t.Errorf("info --config: %q", out)
	}
	if out := ok(t, []string{"FMCAP_RING_PATH=" + path}, "info"); !strings.HasPrefix(out, "ring        "+path+"\n") {
		t.Errorf("info with FMCAP_RING_PATH: %q", out)
	}
	ok(t, nil, "destroy", "--config", cfg)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("destroy --config left the ring: %v", err)
	}
}
