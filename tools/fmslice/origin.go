package main

// Selecting and naming packets by origin: the port, direction, rule and
// tunnel the chunk's metadata frames keep for each packet (store/chunk
// FORMAT). --port, --direction, --rule, --vni and --gwlb-endpoint select
// packets whose stored metadata says so; they combine (and) with each other
// and with the tcpdump filter, and are evaluated per packet from the
// metadata, not through the index (the index has no terms for them: a
// selective origin query still reads every frame the time range and the
// filter's index terms leave). A packet whose metadata is unknown (chunks
// written before metadata, uncompressed chunks) matches no origin
// selection; how many there were is said on stderr.

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/urfave/cli/v2"

	"github.com/fmcap/fmcap/internal/cliutil"
	"github.com/fmcap/fmcap/shmring"
	"github.com/fmcap/fmcap/store/chunk"
)

// originFlags are fmslice's selection flags, added to its flag list.
func originFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "port", Usage: "only packets captured on this fwd port: its name in --config's fwd.ports, or its index"},
		&cli.StringFlag{Name: "direction", Usage: "only packets of this direction: in (as received), out (as sent) or inline"},
		&cli.StringFlag{Name: "rule", Usage: "only packets captured by this rule id"},
		&cli.StringFlag{Name: "vni", Usage: "only packets mirrored (VXLAN) with this VNI"},
		&cli.StringFlag{Name: "gwlb-endpoint", Usage: "only packets from this GWLB endpoint id (hex, as in the GENEVE option; vpce- prefix allowed)"},
	}
}

// selection is the origin selection; nil selects everything.
type selection struct {
	port      int // -1: any
	dir       int // -1: any
	rule      int64
	vni       int64
	endpoint  uint64
	byGWLB    bool
	noMeta    atomic.Int64 // packets of the range left out for want of metadata
	portNames []string
}

// setupOrigin reads the port names (--config) and the selection flags
// into q, and says whether packets' metadata must be read (pcapng output
// names interfaces by it). It returns the port names.
func setupOrigin(cc *cli.Context, q *sliceReq, pcapng bool) ([]string, error) {
	names, err := portNames(cc.String("config"))
	if err != nil {
		return nil, err
	}
	if q.sel, err = newSelection(cc, names); err != nil {
		return nil, err
	}
	q.meta = pcapng || q.sel != nil
	return names, nil
}

// portNames are the names of fwd.ports in the file at path, by index (the
// index fwd gives the port and the ring record carries).
func portNames(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	f, err := cliutil.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var names []string
	for i := 0; ; i++ {
		p := f.Lookup("fwd", "ports", i)
		if p == nil {
			return names, nil
		}
		name := ""
		if n := cliutil.Key(p, "name"); n != nil {
			name = n.Value
		}
		names = append(names, name)
	}
}

// portName is the port's name from the configuration, else "port<N>".
func portName(names []string, port uint16) string {
	if int(port) < len(names) && names[port] != "" {
		return names[port]
	}
	return fmt.Sprintf("port%d", port)
}

// newSelection reads the selection flags; nil when none is given.
func newSelection(cc *cli.Context, names []string) (*selection, error) {
	s := &selection{port: -1, dir: -1, rule: -1, vni: -1, portNames: names}
	any := false
	if v := cc.String("port"); v != "" {
		any = true
		for i, n := range names {
			if n == v {
				s.port = i
			}
		}
		if s.port < 0 {
			n, err := strconv.ParseUint(strings.TrimPrefix(v, "port"), 10, 16)
			if err != nil {
				if len(names) == 0 {
					return nil, fmt.Errorf("--port %q: not a port index, and no --config to name ports from", v)
				}
				return nil, fmt.Errorf("--port %q: not a port of --config's fwd.ports (%s) nor an index", v, strings.Join(names, ", "))
			}
			s.port = int(n)
		}
	}
	if v := cc.String("direction"); v != "" {
		any = true
		switch v {
		case "in":
			s.dir = int(shmring.DirIngress)
		case "out":
			s.dir = int(shmring.DirEgress)
		case "inline":
			s.dir = int(shmring.DirInline)
		default:
			return nil, fmt.Errorf("--direction %q: use in, out or inline", v)
		}
	}
	if v := cc.String("rule"); v != "" {
		any = true
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--rule %q: a rule id is a number (fmctl rules lists them)", v)
		}
		s.rule = int64(n)
	}
	if v := cc.String("vni"); v != "" {
		any = true
		n, err := strconv.ParseUint(v, 10, 24)
		if err != nil {
			return nil, fmt.Errorf("--vni %q: a VNI is a number from 0 to 16777215", v)
		}
		s.vni = int64(n)
	}
	if v := cc.String("gwlb-endpoint"); v != "" {
		any = true
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(v, "vpce-"), "0x"), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("--gwlb-endpoint %q: the endpoint id is up to 16 hex digits (as fmslice's pcapng interface names show it)", v)
		}
		s.endpoint, s.byGWLB = n, true
	}
	if !any {
		return nil, nil
	}
	return s, nil
}

// match says whether a packet with this metadata is selected; known is
// false when its metadata is unknown (then it is not, and counted).
func (s *selection) match(pm *chunk.PacketMeta, known bool) bool {
	if !known {
		s.noMeta.Add(1)
		return false
	}
	if s.port >= 0 && int(pm.Port) != s.port || s.dir >= 0 && int(pm.Dir) != s.dir || s.rule >= 0 && int64(pm.Rule) != s.rule {
		return false
	}
	if s.vni >= 0 {
		if vni, _, ok := pm.Origin.Mirror(); !ok || int64(vni) != s.vni {
			return false
		}
	}
	if s.byGWLB {
		if ep, _, _, ok := pm.Origin.GWLB(); !ok || ep != s.endpoint {
			return false
		}
	}
	return true
}

// originNotice says on stderr what the origin metadata could not tell.
func originNotice(q *sliceReq, w io.Writer) {
	if q.sel != nil {
		if n := q.sel.noMeta.Load(); n > 0 {
			fmt.Fprintf(w, "fmslice: %d packets of the range have no stored origin (chunks written before origins were kept, or uncompressed): the origin selection left them out\n", n)
		}
	}
	if n := q.metaBad.Load(); n > 0 {
		fmt.Fprintf(w, "fmslice: %d frames had damaged origin metadata: their packets' origin is unknown\n", n)
	}
}

// dirName is a direction as the pcapng comment says it.
func dirName(d uint8) string {
	switch shmring.Dir(d) {
	case shmring.DirIngress:
		return "in"
	case shmring.DirEgress:
		return "out"
	case shmring.DirInline:
		return "inline"
	}
	return "unknown"
}
