package e2e

// The object-store tier against a real S3 server (versitygw, internal/
// s3test): fmupload puts a store into the bucket, fmslice reads it back
// from there byte for byte as from the disk; kill -9 of fmupload during
// multipart uploads and a server restart mid-upload leave every chunk once
// in the bucket, complete, and retention deletes locally only what is
// confirmed uploaded.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fmcap/fmcap/internal/s3test"
	fmstore "github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/chunk"
	"github.com/fmcap/fmcap/store/objstore"
)

// s3Env points the AWS chain of this process and its children at srv, and
// nothing else (no ~/.aws, no instance role).
func s3Env(t *testing.T, srv *s3test.Server) {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey, "AWS_SESSION_TOKEN": "",
		"AWS_REGION": srv.Region, "AWS_ENDPOINT_URL_S3": srv.Endpoint, "AWS_ENDPOINT_URL": "",
		"AWS_PROFILE": "", "AWS_CONFIG_FILE": filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"), "AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
}

// bucketOf is a client of srv's bucket under prefix, for the checks.
func bucketOf(t *testing.T, srv *s3test.Server, prefix string) *objstore.Store {
	t.Helper()
	s, err := objstore.New(context.Background(), objstore.Config{Bucket: srv.Bucket, Prefix: prefix, Endpoint: srv.Endpoint,
		Region: srv.Region, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func upload(t *testing.T, st, node string, extra ...string) {
	t.Helper()
	run(t, bin("fmupload"), append([]string{"--store", st, "--bucket", s3test.Bucket, "--prefix", "fleet", "--node", node,
		"--once", "--metrics", "", "--part-size", "5MiB", "--log-level", "warn"}, extra...)...)
}

// TestTierRoundTrip: local → bucket → fmslice, identical to the local
// slice, for the real captures and a generated multi-chunk store, with
// and without the index, compressed and not.
func TestTierRoundTrip(t *testing.T) {
	srv := s3test.Start(t)
	s3Env(t, srv)
	var captures []string
	for _, f := range []string{"ns-http.pcap", "ns-mix-nano.pcap", "gopacket-dns.pcap", "ns-lo-64k.pcap"} {
		captures = append(captures, testdata(f))
	}
	gen := multiFlow(t, 40000)
	stores := []struct {
		name string
		dir  string
	}{
		{"captures", indexedStore(t, captures, "--frame-size", "64KiB", "--chunk-size", "64KiB")},
		{"generated", indexedStore(t, []string{gen}, "--frame-size", "64KiB", "--chunk-size", "2MiB")},
		{"uncompressed-unindexed", store(t, []string{gen}, "--compress", "none", "--frame-size", "64KiB", "--chunk-size", "2MiB")},
	}
	cache := t.TempDir()
	for _, s := range stores {
		list, err := chunk.List(s.dir)
		if err != nil || len(list) < 2 {
			t.Fatalf("%s: %d chunks (%v), want several", s.name, len(list), err)
		}
		upload(t, s.dir, s.name)
		remote := "s3://" + s3test.Bucket + "/fleet/" + s.name
		for _, filter := range []string{"", "tcp", "udp and port 53", "host 198.18.1.2", "not host 198.18.1.2", "net 198.18.7.0/24"} {
			for _, extra := range [][]string{nil, {"--no-index"}} {
				args := append([]string{"-q"}, extra...)
				if filter != "" {
					args = append(args, filter)
				}
				want := run(t, bin("fmslice"), append([]string{"--store", s.dir}, args...)...)
				got := run(t, bin("fmslice"), append([]string{"--store", remote, "--cache", cache}, args...)...)
				if !bytes.Equal(got, want) {
					t.Errorf("%s %q %v: the slice from the bucket (%d bytes) differs from the local one (%d bytes)", s.name, filter, extra, len(got), len(want))
				}
				if filter == "" && len(want) < 1000 {
					t.Errorf("%s: the whole store sliced to %d bytes", s.name, len(want))
				}
			}
		}
		if s.name == "generated" {
			// The index is read from the bucket (through the cache), and
			// only the frames it points at are fetched.
			selCache := t.TempDir()
			_, stderr, code := runCode(t, bin("fmslice"), "--store", remote, "--cache", selCache, "--explain", "-w", filepath.Join(t.TempDir(), "o.pcap"), "host 198.18.1.2 and port 80")
			// Again with the cache: the tables and segments are not read again.
			_, again, _ := runCode(t, bin("fmslice"), "--store", remote, "--cache", selCache, "--explain", "-w", filepath.Join(t.TempDir(), "o.pcap"), "host 198.18.1.2 and port 80")
			if !strings.Contains(again, " 0 GETs, 0 bytes for chunk tables and index segments") {
				t.Errorf("the second query read tables or segments again:\n%s", again)
			}
			var segs, frames, gets, got, stored, frameBytes, wanted int64
			for _, line := range strings.Split(stderr, "\n") {
				switch {
				case strings.Contains(line, "index segments consulted"):
					fmt.Sscanf(line, "plan: %d index segments consulted", &segs)
				case strings.Contains(line, "frames read"):
					fmt.Sscanf(line, "plan: %d frames read", &frames)
				case strings.Contains(line, "range GETs"):
					fmt.Sscanf(line[strings.Index(line, "/: ")+3:], "%d range GETs, %d bytes", &gets, &got)
					if m := frameRE.FindStringSubmatch(line); m != nil {
						frameBytes, _ = strconv.ParseInt(m[1], 10, 64)
						wanted, _ = strconv.ParseInt(m[2], 10, 64)
					}
				}
			}
			for _, in := range list {
				stored += int64(in.Size(s.dir))
			}
			// Coalescing reads the gaps between neighbouring frames: at
			// most half as much again as the frames themselves.
			if wanted == 0 || float64(frameBytes) > 1.5*float64(wanted) {
				t.Errorf("frames: %d bytes fetched for %d wanted, want at most 1.5x:\n%s", frameBytes, wanted, stderr)
			}
			if code != 0 || segs == 0 || frames == 0 || gets == 0 || got == 0 || got > stored/2 {
				t.Errorf("selective slice from the bucket: exit %d, %d segments, %d frames, %d GETs, %d bytes of %d stored:\n%s", code, segs, frames, gets, got, stored, stderr)
			} else {
				t.Logf("selective slice from the bucket: %d segments, %d frames read; %d GETs, %d bytes of %d stored; frames: %d bytes fetched for %d wanted", segs, frames, gets, got, stored, frameBytes, wanted)
			}
		}
		// A time range cutting chunks, from the bucket with the cache warm.
		ts := packetTimes(t, writeFile(t, run(t, bin("fmslice"), "--store", s.dir, "-q")))
		slices.Sort(ts)
		from, to := unixArg(ts[len(ts)/3]), unixArg(ts[2*len(ts)/3])
		want := run(t, bin("fmslice"), "--store", s.dir, "-q", "--from", from, "--to", to)
		got := run(t, bin("fmslice"), "--store", remote, "--cache", cache, "-q", "--from", from, "--to", to)
		if !bytes.Equal(got, want) || len(want) == 0 {
			t.Errorf("%s [%s, %s): bucket %d bytes, local %d bytes", s.name, from, to, len(got), len(want))
		}
	}
}

var frameRE = regexp.MustCompile(`GETs, (\d+) bytes for frames holding (\d+) compressed bytes wanted`)

// bigStore is a store of uncompressed chunks of 12 MiB (multipart uploads
// of 3 parts at 5 MiB) and the SHA-256 of each chunk's files.
func bigStore(t *testing.T, chunks int) (string, map[string][32]byte) {
	t.Helper()
	st := store(t, []string{genCapture(t, chunks*12<<20/146)}, "--compress", "none", "--chunk-size", "12MiB", "--frame-size", "1MiB")
	list, err := chunk.List(st)
	if err != nil || len(list) < chunks {
		t.Fatalf("%d chunks (%v), want %d", len(list), err, chunks)
	}
	sums := map[string][32]byte{}
	for _, in := range list {
		for _, f := range in.Files() {
			b, err := os.ReadFile(filepath.Join(st, f))
			if err != nil {
				t.Fatal(err)
			}
			sums[f] = sha256.Sum256(b)
		}
	}
	return st, sums
}

// checkBucket fails unless every object under the node is one of sums,
// complete (its SHA-256), and every local file missing is in the bucket;
// with all, every file of sums must be there. It returns how many are.
func checkBucket(t *testing.T, b *objstore.Store, st string, sums map[string][32]byte, all bool) int {
	t.Helper()
	ctx := context.Background()
	objs, err := b.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, o := range objs {
		if strings.Contains(o.Key, "/") {
			continue // index/
		}
		want, ok := sums[o.Key]
		if !ok {
			t.Errorf("bucket holds %s, not a file of the store", o.Key)
			continue
		}
		if seen[o.Key] {
			t.Errorf("%s listed twice", o.Key)
		}
		seen[o.Key] = true
		data, err := b.GetRange(ctx, o.Key, 0, o.Size)
		if err != nil {
			t.Fatal(err)
		}
		if sha256.Sum256(data) != want {
			t.Errorf("%s in the bucket: %d bytes, not the local file's content", o.Key, o.Size)
		}
	}
	for name := range sums {
		_, err := os.Stat(filepath.Join(st, name))
		if os.IsNotExist(err) && !seen[name] {
			t.Errorf("%s deleted locally but not in the bucket", name)
		}
		if all && !seen[name] {
			t.Errorf("%s not in the bucket", name)
		}
	}
	return len(seen)
}

// enforce runs the writer's retention with a quota of one byte: in a
// tiered store it may remove only what the upload mark covers.
func enforce(t *testing.T, st string) int {
	t.Helper()
	r := &fmstore.Retention{Dir: st, MaxBytes: 1, Log: slog.New(slog.DiscardHandler)}
	n, err := r.Enforce(time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	if r.LostToTier() != 0 {
		t.Errorf("retention removed %d chunks not uploaded", r.LostToTier())
	}
	return n
}

func startUploader(t *testing.T, st, node string, extra ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin("fmupload"), append([]string{"--store", st, "--bucket", s3test.Bucket, "--prefix", "fleet",
		"--node", node, "--metrics", "", "--part-size", "5MiB", "--concurrency", "1", "--parallel", "1",
		"--poll", "100ms", "--log-level", "warn"}, extra...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("fmupload stderr:\n%s", stderr.String())
		}
	})
	return cmd
}

// waitMultipart waits until a multipart upload under the node is in
// progress that is not one of seen (left by an earlier run), and adds it to
// seen; false when the uploader finished (or died) first.
func waitMultipart(t *testing.T, b *objstore.Store, cmd *exec.Cmd, st string, last uint64, seen map[string]bool) bool {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		ids, err := b.Incomplete(context.Background(), "")
		for _, id := range ids {
			if err == nil && !seen[id] {
				seen[id] = true
				return true
			}
		}
		if through, _, _ := fmstore.ReadUploaded(st); through >= last {
			return false
		}
		if cmd.ProcessState != nil || syscall.Kill(cmd.Process.Pid, 0) != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no multipart upload seen in 2 minutes")
	return false
}

// TestTierKillUploader: fmupload killed with SIGKILL during multipart
// uploads, again and again, then run to the end: every chunk once in the
// bucket, complete, nothing left half-uploaded, and retention (run after
// each kill) deleted only chunks already in the bucket.
func TestTierKillUploader(t *testing.T) {
	srv := s3test.Start(t)
	s3Env(t, srv)
	st, sums := bigStore(t, 6)
	list, _ := chunk.List(st)
	last := list[len(list)-1].LastSeq
	b := bucketOf(t, srv, "fleet/kill/")
	rng := rand.New(rand.NewPCG(15, 2))
	kills := 0
	seen := map[string]bool{}
	for round := 0; round < 6; round++ {
		cmd := startUploader(t, st, "kill")
		if !waitMultipart(t, b, cmd, st, last, seen) {
			cmd.Process.Kill()
			cmd.Wait()
			break
		}
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		kills++
		checkBucket(t, b, st, sums, false)
		enforce(t, st)
		checkBucket(t, b, st, sums, false)
	}
	if kills < 3 {
		t.Errorf("fmupload killed during a multipart upload only %d times, want at least 3", kills)
	}
	upload(t, st, "kill", "--concurrency", "1", "--parallel", "1")
	if n := checkBucket(t, b, st, sums, true); n != len(sums) {
		t.Errorf("%d objects in the bucket, want %d", n, len(sums))
	}
	if ids, err := b.Incomplete(context.Background(), ""); err != nil || len(ids) != 0 {
		t.Errorf("incomplete uploads left: %d (%v)", len(ids), err)
	}
	if through, tiered, err := fmstore.ReadUploaded(st); err != nil || !tiered || through != last {
		t.Errorf("upload mark: through %d tiered %v (%v), want %d", through, tiered, err, last)
	}
	// Everything is uploaded: the quota may now remove every finished chunk.
	enforce(t, st)
	if left, _ := chunk.List(st); len(left) != 0 {
		t.Errorf("%d chunks kept after upload and a 1-byte quota", len(left))
	}
	t.Logf("killed fmupload %d times during multipart uploads", kills)
}

// TestTierServerRestart: the S3 server stopped in the middle of a
// multipart upload and started again: fmupload carries on by itself.
func TestTierServerRestart(t *testing.T) {
	srv := s3test.Start(t)
	s3Env(t, srv)
	st, sums := bigStore(t, 3)
	list, _ := chunk.List(st)
	last := list[len(list)-1].LastSeq
	b := bucketOf(t, srv, "fleet/restart/")
	cmd := startUploader(t, st, "restart", "--retry-for", "1m")
	if !waitMultipart(t, b, cmd, st, last, map[string]bool{}) {
		t.Fatal("the uploads ended before the server could be stopped")
	}
	srv.Stop()
	time.Sleep(3 * time.Second)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		through, _, err := fmstore.ReadUploaded(st)
		if err != nil {
			t.Fatal(err)
		}
		if through == last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("upload mark at %d after 3 minutes, want %d", through, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if n := checkBucket(t, b, st, sums, true); n != len(sums) {
		t.Errorf("%d objects in the bucket, want %d", n, len(sums))
	}
	if ids, err := b.Incomplete(context.Background(), ""); err != nil || len(ids) != 0 {
		t.Errorf("incomplete uploads left: %d (%v)", len(ids), err)
	}
}

// TestTierBadSettings: refused credentials and a missing bucket are
// errors naming the setting, and the secret is never printed.
func TestTierBadSettings(t *testing.T) {
	srv := s3test.Start(t)
	s3Env(t, srv)
	st := store(t, []string{genCapture(t, 1000)})
	args := []string{"--store", st, "--bucket", s3test.Bucket, "--node", "n", "--once", "--metrics", ""}

	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-0123456789")
	_, stderr, code := runCode(t, bin("fmupload"), args...)
	if code != 1 || !strings.Contains(stderr, "AWS_SECRET_ACCESS_KEY") || strings.Contains(stderr, "wrong-secret-0123456789") {
		t.Errorf("bad secret: exit %d, stderr %q: want 1 and AWS_SECRET_ACCESS_KEY named, the secret not", code, stderr)
	}
	_, stderr, code = runCode(t, bin("fmslice"), "--store", "s3://"+s3test.Bucket+"/fleet/n", "--cache", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "AWS_SECRET_ACCESS_KEY") || strings.Contains(stderr, "wrong-secret-0123456789") {
		t.Errorf("fmslice, bad secret: exit %d, stderr %q", code, stderr)
	}
	t.Logf("fmslice, bad secret: %s", stderr)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)

	if _, err := os.Stat(filepath.Join(st, fmstore.UploadedMark)); err == nil {
		t.Errorf("a failed start left an upload mark: the store would keep chunks for an uploader that never ran")
	}
	args[3] = "no-such-bucket"
	_, stderr, code = runCode(t, bin("fmupload"), args...)
	if code != 1 || !strings.Contains(stderr, `bucket "no-such-bucket" does not exist`) || !strings.Contains(stderr, "check bucket") {
		t.Errorf("missing bucket: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = runCode(t, bin("fmslice"), "--store", "s3://no-such-bucket/x", "--cache", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "no-such-bucket") {
		t.Errorf("fmslice, missing bucket: exit %d, stderr %q", code, stderr)
	}
	t.Logf("fmslice, missing bucket: %s", stderr)

	// The upload: section of the shared file: a misspelt key is named with
	// its line; refused keys from the file name the file's keys.
	cfg := filepath.Join(t.TempDir(), "fmcap.yaml")
	os.WriteFile(cfg, []byte("upload:\n  store: "+st+"\n  bukcet: x\n"), 0o600)
	if _, stderr, code := runCode(t, bin("fmupload"), "--config", cfg, "--once"); code != 1 || !strings.Contains(stderr, cfg+":3: unknown key upload.bukcet") {
		t.Errorf("misspelt key: exit %d, stderr %q", code, stderr)
	}
	os.WriteFile(cfg, []byte("upload:\n  store: "+st+"\n  bucket: "+s3test.Bucket+"\n  node: n\n  metrics: \"\"\n  access_key_id: "+srv.AccessKey+"\n  secret_access_key: wrong-secret-0123456789\n"), 0o600)
	_, stderr, code = runCode(t, bin("fmupload"), "--config", cfg, "--once")
	if code != 1 || !strings.Contains(stderr, "access_key_id and secret_access_key in "+cfg+" (upload:)") || strings.Contains(stderr, "wrong-secret-0123456789") {
		t.Errorf("bad secret in the file: exit %d, stderr %q", code, stderr)
	}
	os.WriteFile(cfg, []byte("upload:\n  store: "+st+"\n  bucket: "+s3test.Bucket+"\n  node: n\n  metrics: \"\"\n  access_key_id: "+srv.AccessKey+"\n  secret_access_key: "+srv.SecretKey+"\n"), 0o600)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	if _, stderr, code := runCode(t, bin("fmupload"), "--config", cfg, "--once"); code != 0 {
		t.Errorf("fmupload --config with the keys in upload:: exit %d, stderr %q", code, stderr)
	}
	if got, want := run(t, bin("fmslice"), "--config", cfg, "--store", "s3://"+s3test.Bucket+"/n", "--cache", t.TempDir(), "-q"), run(t, bin("fmslice"), "--store", st, "-q"); !bytes.Equal(got, want) {
		t.Errorf("fmslice with the keys from --config's upload: section: %d bytes, local %d", len(got), len(want))
	}
	os.Remove(filepath.Join(st, fmstore.UploadedMark))

}

// TestTierMergeNodes: three nodes' stores, two read from the bucket and one
// from its disk, sliced as one: the output is mergecap's chronological
// merge of the three inputs, byte for byte in tcpdump -x text, with a
// filter and without, over the whole span and over a part of it.
func TestTierMergeNodes(t *testing.T) {
	need(t, "mergecap", "tcpdump")
	srv := s3test.Start(t)
	s3Env(t, srv)
	var inputs, stores []string
	for i, seed := range []string{"1", "2", "3"} {
		p := filepath.Join(t.TempDir(), "in.pcap")
		// The same start and span: the nodes' packets interleave.
		run(t, bin("gen"), "-o", p, "-n", strconv.Itoa(3000+1000*i), "-flows", "50", "-duration", "2s", "-seed", seed, "-start", "1767225600")
		inputs = append(inputs, p)
		st := indexedStore(t, []string{p}, "--frame-size", "64KiB", "--chunk-size", "128KiB")
		node := "merge" + seed
		if i < 2 {
			upload(t, st, node)
			stores = append(stores, "s3://"+s3test.Bucket+"/fleet/"+node)
		} else {
			stores = append(stores, st)
		}
	}
	merged := filepath.Join(t.TempDir(), "merged.pcap")
	run(t, "mergecap", append([]string{"-F", "nsecpcap", "-w", merged}, inputs...)...)
	ts := packetTimes(t, merged)
	cache := t.TempDir()
	for _, tc := range []struct {
		filter   string
		from, to string
	}{
		{"", "", ""},
		{"tcp", "", ""},
		{"udp", unixArg(ts[len(ts)/4]), unixArg(ts[3*len(ts)/4])},
	} {
		args := []string{"--store", strings.Join(stores, ","), "--cache", cache, "-q"}
		if tc.from != "" {
			args = append(args, "--from", tc.from, "--to", tc.to)
		}
		if tc.filter != "" {
			args = append(args, tc.filter)
		}
		out := writeFile(t, run(t, bin("fmslice"), args...))
		want := merged
		if tc.from != "" {
			// The range, cut from the merge with editcap's -A/-B.
			need(t, "editcap")
			cut := filepath.Join(t.TempDir(), "cut.pcap")
			run(t, "editcap", "-F", "nsecpcap", "-A", tc.from, "-B", tc.to, merged, cut)
			want = cut
		}
		var f []string
		if tc.filter != "" {
			f = []string{tc.filter}
		}
		got, exp := tcpdumpText(t, out, f...), tcpdumpText(t, want, f...)
		if got != exp || len(exp) == 0 {
			gl, el := strings.Split(got, "\n"), strings.Split(exp, "\n")
			for i := range min(len(gl), len(el)) {
				if gl[i] != el[i] {
					t.Logf("first difference at line %d:\n got %s\nwant %s", i, gl[i], el[i])
					break
				}
			}
			t.Errorf("%q [%s, %s): the merged slice differs from mergecap's merge (%d vs %d bytes of text)", tc.filter, tc.from, tc.to, len(got), len(exp))
		}
	}
	// pcapng: the same packets, each node's on interfaces of its own
	// named by the node (an s3:// store's node, a local store's path).
	need(t, "tshark")
	ng := writeFile(t, run(t, bin("fmslice"), "--store", strings.Join(stores, ","), "--cache", cache, "-q", "--format", "pcapng"))
	if got, exp := tcpdumpText(t, ng), tcpdumpText(t, merged); got != exp {
		t.Errorf("the merged pcapng's packets differ from mergecap's merge (%d vs %d bytes of text)", len(got), len(exp))
	}
	// fminject's records are port 0's, with no tunnel: each node's one
	// interface is its port0 (the metadata came through the merge).
	nodes := []string{"merge1/port0", "merge2/port0", stores[2] + "/port0"}
	per := make([]int, len(nodes))
	for _, name := range strings.Fields(string(run(t, "tshark", "-r", ng, "-T", "fields", "-e", "frame.interface_name"))) {
		i := slices.Index(nodes, name)
		if i < 0 {
			t.Fatalf("interface %q is none of the nodes' %q", name, nodes)
		}
		per[i]++
	}
	if !slices.Equal(per, []int{3000, 4000, 5000}) {
		t.Errorf("packets per node's interfaces %v, want [3000 4000 5000] (the nodes' inputs)", per)
	}
}

// TestTierServerDown: the S3 server gone for longer than a part is
// retried: the chunk's upload fails, fmupload retries it by itself once the
// server is back, and aborts what the failure left half-uploaded.
func TestTierServerDown(t *testing.T) {
	srv := s3test.Start(t)
	s3Env(t, srv)
	st, sums := bigStore(t, 3)
	list, _ := chunk.List(st)
	last := list[len(list)-1].LastSeq
	b := bucketOf(t, srv, "fleet/down/")
	port := freeTCPPort(t)
	cmd := startUploader(t, st, "down", "--retry-for", "1s", "--metrics", "127.0.0.1:"+port)
	if !waitMultipart(t, b, cmd, st, last, map[string]bool{}) {
		t.Fatal("the uploads ended before the server could be stopped")
	}
	srv.Stop()
	time.Sleep(6 * time.Second) // retry-for and the SDK's attempts run out
	// Meanwhile the metrics say what waits and that uploads failed.
	m := scrape(t, port)
	if m["fmcap_upload_backlog_chunks"] < 1 || m["fmcap_upload_failures_total"] < 1 || m["fmcap_upload_lag_seconds"] <= 0 {
		t.Errorf("metrics during the outage: backlog %v chunks, %v failures, lag %v s; want a backlog, failures and a lag",
			m["fmcap_upload_backlog_chunks"], m["fmcap_upload_failures_total"], m["fmcap_upload_lag_seconds"])
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		through, _, err := fmstore.ReadUploaded(st)
		if err != nil {
			t.Fatal(err)
		}
		ids, _ := b.Incomplete(context.Background(), "")
		n := len(ids)
		if through == last && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90 s: mark at %d (want %d), %d incomplete uploads", through, last, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	m = scrape(t, port)
	if m["fmcap_upload_backlog_chunks"] != 0 || m["fmcap_upload_backlog_bytes"] != 0 || m["fmcap_upload_through_seq"] != float64(last) ||
		m["fmcap_upload_chunks_total"] != float64(len(list)) || m["fmcap_upload_lag_seconds"] != 0 {
		t.Errorf("metrics once done: %v; want no backlog, through %d, %d chunks", m, last, len(list))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if n := checkBucket(t, b, st, sums, true); n != len(sums) {
		t.Errorf("%d objects in the bucket, want %d", n, len(sums))
	}
}

func freeTCPPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// scrape reads the Prometheus metrics on 127.0.0.1:port, samples without
// labels.
func scrape(t *testing.T, port string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + port + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if name, v, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "#") {
			f, _ := strconv.ParseFloat(v, 64)
			m[name] = f
		}
	}
	return m
}

// TestTierDamagedFrame: a frame damaged in the bucket is reported and
// skipped as the same damage on disk is: same output, same exit status.
func TestTierDamagedFrame(t *testing.T) {
	srv := s3test.Start(t)
	s3Env(t, srv)
	st := store(t, []string{multiFlow(t, 20000)}, "--frame-size", "64KiB", "--chunk-size", "1MiB")
	upload(t, st, "damaged")
	list, _ := chunk.List(st)
	in := list[len(list)/2]
	for _, p := range []string{filepath.Join(st, in.Name), filepath.Join(srv.Dir, srv.Bucket, "fleet", "damaged", in.Name)} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(b) / 3; i < len(b)/3+64; i++ {
			b[i] ^= 0x5a
		}
		if err := os.WriteFile(p, b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	want, wantErr, wantCode := runCode(t, bin("fmslice"), "--store", st, "-q")
	got, gotErr, gotCode := runCode(t, bin("fmslice"), "--store", "s3://"+s3test.Bucket+"/fleet/damaged", "--cache", t.TempDir(), "-q")
	if wantCode != 3 || gotCode != 3 || !bytes.Equal(got, want) || len(want) == 0 {
		t.Errorf("local: exit %d, %d bytes; bucket: exit %d, %d bytes; want exit 3 and the same bytes\nlocal: %s\nbucket: %s", wantCode, len(want), gotCode, len(got), wantErr, gotErr)
	}
	if !strings.Contains(gotErr, "damaged, skipped: chunk \""+in.Name+"\" frame") {
		t.Errorf("the bucket's damage is not named: %s", gotErr)
	}
}
