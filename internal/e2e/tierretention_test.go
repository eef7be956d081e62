package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fmcap/fmcap/internal/s3test"
	fmstore "github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/objstore"
	"github.com/fmcap/fmcap/store/tier"
)

// TestTierRetentionReported: retention in both tiers, each by the same
// age at the same instant, so that both remove the same chunks. Bucket
// retention leaves one record per chunk under retention/ in the bucket,
// local retention its retention.log; fmslice slices, flows, timeline and info say
// over either store exactly what was removed (chunks, packets, seqs), and
// fmslice flows, timeline and info over s3:// answer byte for byte as over the
// local store (info's first line names the store), alone and in a list
// mixing both; compressed chunks, and uncompressed ones with their frame
// tables and metadata sidecars beside them.
func TestTierRetentionReported(t *testing.T) {
	srv, gen := hourOnS3(t)
	for _, node := range []struct{ name, compress string }{{"zstd", "zstd"}, {"plain", "none"}} {
		t.Run(node.name, func(t *testing.T) { retentionReported(t, srv, gen, node.name, "--compress", node.compress) })
	}
}

func retentionReported(t *testing.T, srv *s3test.Server, gen, node string, writerArgs ...string) {
	st, list := hourStore(t, gen, writerArgs...)
	upload(t, st, node)
	remote := "s3://" + s3test.Bucket + "/fleet/" + node

	// The age ends halfway between the newest packets of chunks k-1 and k.
	k := len(list) / 2
	now := time.Now()
	age := now.Sub(time.Unix(0, (list[k-1].MaxTS+list[k].MaxTS)/2))
	ctx := context.Background()
	b, err := objstore.NewBackend(ctx, objstore.Config{Bucket: srv.Bucket, Prefix: "fleet/" + node, Endpoint: srv.Endpoint,
		Region: srv.Region, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := tier.Expire(ctx, b, age, now, list[len(list)-1].LastSeq, slog.New(slog.DiscardHandler)); n != k || err != nil {
		t.Fatalf("bucket retention removed %d chunks (%v), want %d", n, err, k)
	}
	r := &fmstore.Retention{Dir: st, MaxAge: age, Log: slog.New(slog.DiscardHandler)}
	if n, err := r.Enforce(now, false); n != k || err != nil {
		t.Fatalf("local retention removed %d chunks (%v), want %d", n, err, k)
	}
	// The bucket's records: one per chunk, named by its seqs.
	recs, err := b.List(ctx, fmstore.RetentionDir)
	if err != nil || len(recs) != k {
		t.Fatalf("%d records in the bucket (%v), want %d", len(recs), err, k)
	}
	var packets uint64
	hi := list[0].MaxTS
	for i, in := range list[:k] {
		if recs[i].Name != fmstore.RecordName(in) {
			t.Errorf("record %d is %s, want %s", i, recs[i].Name, fmstore.RecordName(in))
		}
		packets += in.LastSeq - in.FirstSeq + 1
		hi = max(hi, in.MaxTS)
	}
	ts := func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }
	notice := fmt.Sprintf("fmslice: part of this range was removed by retention: %d chunks, packets from %s to %s (seq %d..%d) are no longer stored\n",
		k, ts(list[0].MinTS), ts(hi), list[0].FirstSeq, list[k-1].LastSeq)
	infoLine := fmt.Sprintf("retention    %d chunks removed, %d packets captured %s .. %s (by [age %d]), last removal %s\n",
		k, packets, ts(list[0].MinTS), ts(hi), k, ts(now.UnixNano()))

	cache := t.TempDir()
	from := unixArg(list[0].MinTS)
	filter := "tcp and portrange 1-1000"
	var slices [2][]byte
	for i, s := range []string{st, remote} {
		// A slice over the whole capture: what is left, and the notice.
		out, stderr, code := runCode(t, bin("fmslice"), "--store", s, "--cache", cache, "--from", from, "-q", filter)
		if code != 0 || !strings.Contains(stderr, notice) || len(out) < 1000 {
			t.Errorf("%s: slice: exit %d, %d bytes; stderr:\n%s\nwant the notice\n%s", s, code, len(out), stderr, notice)
		}
		slices[i] = out
		// Flows: the notice too.
		if _, stderr, code := runCode(t, bin("fmslice"), "flows", "--store", s, "--cache", cache, "--from", from, filter); code != 0 || !strings.Contains(stderr, notice) {
			t.Errorf("%s: flows: exit %d; stderr:\n%s\nwant the notice\n%s", s, code, stderr, notice)
		}
		// Timeline: the notice too.
		if _, stderr, code := runCode(t, bin("fmslice"), "timeline", "--store", s, "--cache", cache, "--from", from, "--step", "1m", filter); code != 0 || !strings.Contains(stderr, notice) {
			t.Errorf("%s: timeline: exit %d; stderr:\n%s\nwant the notice\n%s", s, code, stderr, notice)
		}
		// Info: the retention line, and in JSON the counts.
		if out := string(run(t, bin("fmslice"), "info", "--store", s, "--cache", cache)); !strings.Contains(out, infoLine) {
			t.Errorf("%s: info:\n%s\nwant the line\n%s", s, out, infoLine)
		}
		var si struct {
			Retention struct {
				Chunks  int    `json:"chunks"`
				Packets uint64 `json:"packets"`
			} `json:"retention"`
		}
		if err := json.Unmarshal(run(t, bin("fmslice"), "info", "--json", "--store", s, "--cache", cache), &si); err != nil ||
			si.Retention.Chunks != k || si.Retention.Packets != packets {
			t.Errorf("%s: info --json: %+v (%v), want %d chunks, %d packets", s, si.Retention, err, k, packets)
		}
	}
	if !bytes.Equal(slices[0], slices[1]) {
		t.Errorf("the bucket's slice is %d bytes, the local one %d", len(slices[1]), len(slices[0]))
	}

	// Flows and info over s3:// are the local store's, byte for byte (the
	// store's name aside), alone and with both stores in one list.
	storeName := regexp.MustCompile(`(?m)^store {8}.*$|"store": ".*"`)
	same := func(what string, args ...string) {
		t.Helper()
		local := run(t, bin("fmslice"), append(args, "--store", st, "--cache", cache)...)
		fromBucket := run(t, bin("fmslice"), append(args, "--store", remote, "--cache", cache)...)
		local = storeName.ReplaceAll(local, []byte("STORE"))
		fromBucket = storeName.ReplaceAll(fromBucket, []byte("STORE"))
		if !bytes.Equal(local, fromBucket) || len(local) < 100 {
			t.Errorf("%s over the bucket:\n%s\nover the local store:\n%s", what, fromBucket, local)
		}
	}
	same("flows", "flows", "-n", "0", "-q")
	same("flows --json", "flows", "-n", "0", "-q", "--json", "--by", "packets")
	same("flows of a filter", "flows", "-n", "0", "-q", "--from", unixArg(list[k+1].MinTS), filter)
	same("info", "info")
	same("info --json", "info", "--json")
	same("timeline", "timeline", "--step", "10s", "-q", "--json")
	same("timeline of a filter", "timeline", "--step", "1s", "-q", "--from", unixArg(list[k+1].MinTS), filter)
	// Both stores at once: each counted, the notice for each.
	out, stderr, code := runCode(t, bin("fmslice"), "flows", "--store", st+","+remote, "--cache", cache, "--json", "-n", "0", "--from", from)
	var rows []struct{ Packets uint64 }
	if code != 0 || json.Unmarshal(out, &rows) != nil || strings.Count(stderr, notice) != 2 {
		t.Fatalf("flows over both: exit %d; stderr:\n%s", code, stderr)
	}
	var both uint64
	for _, r := range rows {
		both += r.Packets
	}
	if si := storeInfo(t, st); both != 2*si.Packets || si.Packets+packets != 40000 {
		t.Errorf("flows over both count %d packets, info %d each (and %d removed)", both, si.Packets, packets)
	}
	if out := string(run(t, bin("fmslice"), "info", "--store", st+","+remote, "--cache", cache)); strings.Count(out, infoLine) != 2 ||
		!strings.Contains(out, fmt.Sprintf("retention    %d chunks removed, %d packets\n", 2*k, 2*packets)) {
		t.Errorf("info over both:\n%s", out)
	}
	t.Logf("%d of %d chunks (%d packets) removed from both tiers", k, len(list), packets)
}
