package segment_test

// Tests of the format that need the query package (the decoder, the
// planner), which imports segment: so they are external tests.

import (
	"testing"

	"github.com/fmcap/fmcap/internal/origin"
	"github.com/fmcap/fmcap/internal/testpkt"
	"github.com/fmcap/fmcap/query"
	"github.com/fmcap/fmcap/store/segment"
)

func init() { segment.DecodePacket = query.DecodePacket }

func FuzzSegment(f *testing.F) {
	b := segment.NewBuilder(5, 4)
	gw, mi := origin.FromGWLB(0x0123456789abcdef, 1, 2), origin.FromMirror(123, []byte{198, 18, 0, 1})
	for i, fr := range testpkt.Corpus(f)[:40] {
		var p segment.Packet
		query.DecodePacket(fr, &p)
		switch i % 4 { // origin terms of every kind (and packets without)
		case 1:
			p.Origin = segment.OriginOf(uint16(i), 1, 7, &gw)
		case 2:
			p.Origin = segment.OriginOf(1, 2, 9, &mi)
		case 3:
			p.Origin = segment.OriginOf(2, 3, uint32(i), nil)
		}
		b.Add(5+uint64(i), int64(i), &p)
	}
	f.Add(b.Encode())
	sel := &query.Origins{Ports: []uint64{1, 5}, Dirs: []uint64{1, 2}, Rules: []uint64{7, 9}, VNIs: []uint64{123}, Endpoints: []uint64{0x0123456789abcdef}}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := segment.Decode(data)
		if err != nil {
			return
		}
		query.ParsePlan("host 198.18.1.2 and port 80 or net 198.18.0.0/16 or portrange 1-1000").Groups(s)
		sel.Groups(s)
		for g := 0; g < s.Groups(); g++ {
			s.GroupTimes(g)
		}
		table, _ := s.FlowTable()
		s.FlowGroups(func(k *segment.FlowKey) bool { return k.Proto == 6 }, segment.NewBits(s.Groups()))
		if s.GroupCounts(func(int, uint64, uint64) {}) == nil {
			s.FlowCounts(table, func(int, uint32, uint64, uint64) {})
		}
		s.FlowOrigins(table)
		s.Verify()
	})
}
