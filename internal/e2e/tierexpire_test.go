package e2e

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fmcap/fmcap/internal/s3test"
	fmstore "github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/chunk"
	"github.com/fmcap/fmcap/store/segment"
)

// TestTierBucketRetention: fmupload --bucket-retain-age deletes from the
// real S3 server (versitygw) exactly the chunks whose newest packet is
// older than the age, with their frame tables and metadata sidecars
// (Info.Files) and the index segments reaching into them, and nothing
// local; what the bucket keeps still slices as the local store does over
// the same seqs. Each chunk deleted
// leaves its record under retention/.
func TestTierBucketRetention(t *testing.T) {
	srv, gen := hourOnS3(t)
	for _, s := range []struct{ node, compress string }{{"zstd", "zstd"}, {"plain", "none"}} {
		st, list := hourStore(t, gen, "--compress", s.compress)
		upload(t, st, s.node)
		// Keep from chunk k on: the age ends halfway between the newest
		// packets of chunks k-1 and k.
		k := len(list) / 2
		mid := (list[k-1].MaxTS + list[k].MaxTS) / 2
		age := time.Since(time.Unix(0, mid)).Round(time.Second)
		upload(t, st, s.node, "--bucket-retain-age", age.String())

		objs, err := bucketOf(t, srv, "fleet/"+s.node+"/").List(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		var got, want []string
		for _, o := range objs {
			got = append(got, o.Key)
		}
		for _, in := range list[k:] {
			want = append(want, in.Files()...)
		}
		for _, in := range list[:k] { // the removals' records
			want = append(want, fmstore.RecordName(in))
		}
		segs, err := segment.List(filepath.Join(st, "index"))
		if err != nil || len(segs) < 2 {
			t.Fatalf("%s: %d segments (%v)", s.node, len(segs), err)
		}
		var segsGone int
		for _, sg := range segs {
			if sg.First >= list[k].FirstSeq {
				want = append(want, "index/"+sg.Name)
			} else {
				segsGone++
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: the bucket holds\n%s\nwant\n%s", s.node, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if after, _ := chunk.List(st); !slices.Equal(after, list) {
			t.Errorf("%s: the local store changed: %d chunks, had %d", s.node, len(after), len(list))
		}
		// The bucket's slice (its index where a segment is left, a scan
		// where one went with the chunks) is the local one from chunk k's
		// first packet.
		remote := run(t, bin("fmslice"), "--store", "s3://"+s3test.Bucket+"/fleet/"+s.node, "--cache", t.TempDir(), "-q")
		local := run(t, bin("fmslice"), "--store", st, "--from", unixArg(list[k].MinTS), "-q")
		if !bytes.Equal(remote, local) || len(local) < 1000 {
			t.Errorf("%s: the bucket's slice is %d bytes, the local one from chunk %d %d bytes", s.node, len(remote), k, len(local))
		}
		t.Logf("%s: %d of %d chunks and %d of %d segments deleted from the bucket at age %v", s.node, k, len(list), segsGone, len(segs), age)
	}
}

// hourOnS3 starts the S3 server (versitygw) for the test and generates an
// hour of capture, for stores whose chunks minutes apart let an age cut
// between two whatever the time the test takes.
func hourOnS3(t *testing.T) (*s3test.Server, string) {
	t.Helper()
	need(t, "tcpdump")
	srv := s3test.Start(t)
	s3Env(t, srv)
	gen := filepath.Join(t.TempDir(), "hour.pcap")
	run(t, bin("gen"), "-o", gen, "-n", "40000", "-flows", "300", "-duration", "1h")
	return srv, gen
}

// hourStore is an indexed store of hourOnS3's capture in about a dozen
// chunks, and its chunks.
func hourStore(t *testing.T, gen string, writerArgs ...string) (string, []chunk.Info) {
	t.Helper()
	st := indexedStore(t, []string{gen}, append([]string{"--frame-size", "64KiB", "--chunk-size", "2MiB"}, writerArgs...)...)
	list, err := chunk.List(st)
	if err != nil || len(list) < 6 {
		t.Fatalf("%d chunks (%v), want several", len(list), err)
	}
	return st, list
}
