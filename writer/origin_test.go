package writer

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/fmcap/fmcap/internal/origin"
	"github.com/fmcap/fmcap/internal/testpkt"
	"github.com/fmcap/fmcap/shmring"
	"github.com/fmcap/fmcap/store/chunk"
)

// originMeta is what TestPipelineKeepsOrigin's producer gives packet i.
func originMeta(i int) chunk.PacketMeta {
	m := chunk.PacketMeta{Port: uint16(i % 3), Dir: uint8(1 + i/5%2), Rule: uint32(i / 1000)}
	switch i / 100 % 3 {
	case 1:
		m.Origin = origin.FromGWLB(uint64(0xe0+i/1000), 2, uint32(i/100))
	case 2:
		m.Origin = origin.FromMirror(uint32(i/1000), []byte{198, 18, 1, byte(i / 300)})
	}
	return m
}

// TestPipelineKeepsOrigin: every record's port, direction, rule and
// origin, as the ring carried them, come back from the chunks' metadata:
// compressed chunks' metadata frames, uncompressed chunks' sidecars.
func TestPipelineKeepsOrigin(t *testing.T) {
	for _, compress := range []bool{true, false} {
		t.Run(map[bool]string{true: "zstd", false: "none"}[compress], func(t *testing.T) { testPipelineKeepsOrigin(t, compress) })
	}
}

func testPipelineKeepsOrigin(t *testing.T, compress bool) {
	ring := newTestRing(t, 1<<20, 1)
	store := filepath.Join(t.TempDir(), "store")
	const n = 20_000
	go func() {
		r, err := shmring.Open(ring)
		if err != nil {
			t.Error(err)
			return
		}
		defer r.Close()
		p, err := r.NewProducer(shmring.Blocking)
		if err != nil {
			t.Error(err)
			return
		}
		buf := make([]byte, 256)
		for i := 0; i < n; i++ {
			d := testpkt.Packet(i, buf)
			m := originMeta(i)
			if _, ok := p.WriteOrigin(testpkt.Base+int64(i)*1000, uint32(len(d)), m.Port, shmring.Dir(m.Dir), m.Rule, &m.Origin, d); !ok {
				t.Error("write aborted")
				return
			}
		}
		p.Close()
	}()
	cfg := testConfig(t, ring, store)
	cfg.Compress = compress
	if err := Run(context.Background(), cfg, quiet); err != nil {
		t.Fatal(err)
	}
	list, err := chunk.List(store)
	if err != nil {
		t.Fatal(err)
	}
	dec := chunk.NewDecoder()
	seen := 0
	var m chunk.Meta
	for _, in := range list {
		r, err := chunk.OpenReader(store, in, dec)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range r.Table.Frames {
			_, mb, _, err := r.AppendFrameMeta(i, f, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Parse(mb); err != nil || m.Count() != f.Count {
				t.Fatalf("%s frame %d: metadata %v, %d packets of %d", in.Name, i, err, m.Count(), f.Count)
			}
			it := m.Iter()
			var pm chunk.PacketMeta
			for s := f.FirstSeq; it.Next(&pm); s++ {
				if want := originMeta(int(s - 1)); pm != want {
					t.Fatalf("seq %d: %+v, want %+v", s, pm, want)
				}
				seen++
			}
		}
		r.Close()
	}
	if seen != n || len(list) < 2 {
		t.Fatalf("metadata for %d packets in %d chunks, want %d", seen, len(list), n)
	}
}
