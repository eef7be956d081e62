package main

// Selecting and naming packets by origin: the port, direction, rule and
// tunnel the chunk's metadata frames keep for each packet (store/chunk
// FORMAT). --port, --direction, --rule, --vni and --gwlb-endpoint select
// packets whose stored metadata says so; they combine (and) with each other
// and with the tcpdump filter. The index plans them (query.Origins: the
// segments' origin terms keep only the groups holding a selected packet),
// and each packet read is decided from its metadata. Each flag takes one
// value or a comma-separated list (any of them). A packet whose metadata is unknown (chunks
// written before metadata, or before uncompressed chunks kept it in a
// sidecar; a damaged metadata frame or sidecar) matches no origin
// selection; how many there were is said on stderr.

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/urfave/cli/v2"

	"github.com/fmcap/fmcap/internal/cliutil"
	"github.com/fmcap/fmcap/query"
	"github.com/fmcap/fmcap/shmring"
	"github.com/fmcap/fmcap/store/chunk"
)

// originFlags are fmslice's selection flags, added to its flag list.
func originFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "port", Usage: "only packets captured on these fwd ports (comma-separated): names in --config's fwd.ports, or indexes"},
		&cli.StringFlag{Name: "direction", Usage: "only packets of this direction: in (as received), out (as sent) or inline (or a comma-separated list)"},
		&cli.StringFlag{Name: "rule", Usage: "only packets captured by these rule ids (comma-separated)"},
		&cli.StringFlag{Name: "vni", Usage: "only packets mirrored (VXLAN) with these VNIs (comma-separated)"},
		&cli.StringFlag{Name: "gwlb-endpoint", Usage: "only packets from these GWLB endpoint ids (hex, as in the GENEVE option; comma-separated)"},
	}
}

// selection is the origin selection; nil selects everything. Each
// criterion is a list of accepted values (nil: any); a packet must pass
// every criterion given. The index plans the same lists.
type selection struct {
	query.Origins
	noMeta atomic.Int64 // packets of the range left out for want of metadata
}

// setupOrigin reads the port names (--config) and the selection flags
// into q, and whether packets' metadata must be read (pcapng output names
// interfaces by it).
func setupOrigin(cc *cli.Context, q *sliceReq, pcapng bool) error {
	names, err := portNames(cc.String("config"))
	if err != nil {
		return err
	}
	if q.sel, err = newSelection(cc, names); err != nil {
		return err
	}
	q.meta, q.ports = pcapng || q.sel != nil, names
	return nil
}

// origins is the selection as the index plans it (nil: none).
func (s *selection) origins() *query.Origins {
	if s == nil {
		return nil
	}
	return &s.Origins
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

// selectionFlags are the flags newSelection reads, by name.
var selectionFlags = []string{"port", "direction", "rule", "vni", "gwlb-endpoint"}

// newSelection reads the selection flags; nil when none is given.
func newSelection(cc *cli.Context, names []string) (*selection, error) {
	vals := map[string]string{}
	for _, f := range selectionFlags {
		vals[f] = cc.String(f)
	}
	return parseSelection(vals, names)
}

// parseSelection is newSelection on the flags' values: each a value or a
// comma-separated list of them.
func parseSelection(vals map[string]string, names []string) (*selection, error) {
	s := &selection{}
	any := false
	for _, flag := range selectionFlags {
		v := vals[flag]
		if v == "" {
			continue
		}
		any = true
		var list []uint64
		for _, x := range strings.Split(v, ",") {
			x = strings.TrimSpace(x)
			n, err := parseSelValue(flag, x, names)
			if err != nil {
				return nil, err
			}
			list = append(list, n)
		}
		switch flag {
		case "port":
			s.Ports = list
		case "direction":
			s.Dirs = list
		case "rule":
			s.Rules = list
		case "vni":
			s.VNIs = list
		case "gwlb-endpoint":
			s.Endpoints = list
		}
	}
	if !any {
		return nil, nil
	}
	return s, nil
}

// parseSelValue reads one value of a selection flag.
func parseSelValue(flag, v string, names []string) (uint64, error) {
	switch flag {
	case "port":
		for i, n := range names {
			if n == v {
				return uint64(i), nil
			}
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(v, "port"), 10, 16)
		if err != nil {
			if len(names) == 0 {
				return 0, fmt.Errorf("--port %q: not a port index, and no --config to name ports from", v)
			}
			return 0, fmt.Errorf("--port %q: not a port of --config's fwd.ports (%s) nor an index", v, strings.Join(names, ", "))
		}
		return n, nil
	case "direction":
		switch v {
		case "in":
			return uint64(shmring.DirIngress), nil
		case "out":
			return uint64(shmring.DirEgress), nil
		case "inline":
			return uint64(shmring.DirInline), nil
		}
		return 0, fmt.Errorf("--direction %q: use in, out or inline", v)
	case "rule":
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("--rule %q: a rule id is a number (fmctl rules lists them)", v)
		}
		return n, nil
	case "vni":
		n, err := strconv.ParseUint(v, 10, 24)
		if err != nil {
			return 0, fmt.Errorf("--vni %q: a VNI is a number from 0 to 16777215", v)
		}
		return n, nil
	default: // gwlb-endpoint
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(v, "vpce-"), "0x"), 16, 64)
		if err != nil {
			return 0, fmt.Errorf("--gwlb-endpoint %q: the endpoint id is up to 16 hex digits (as fmslice's pcapng interface names show it)", v)
		}
		return n, nil
	}
}

// in says whether v is one of list, or list is nil (any).
func in(list []uint64, v uint64) bool {
	if list == nil {
		return true
	}
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// match says whether a packet with this metadata is selected; known is
// false when its metadata is unknown (then it is not, and counted).
func (s *selection) match(pm *chunk.PacketMeta, known bool) bool {
	if !known {
		s.noMeta.Add(1)
		return false
	}
	if !in(s.Ports, uint64(pm.Port)) || !in(s.Dirs, uint64(pm.Dir)) || !in(s.Rules, uint64(pm.Rule)) {
		return false
	}
	if s.VNIs != nil {
		if vni, _, ok := pm.Origin.Mirror(); !ok || !in(s.VNIs, uint64(vni)) {
			return false
		}
	}
	if s.Endpoints != nil {
		if ep, _, _, ok := pm.Origin.GWLB(); !ok || !in(s.Endpoints, ep) {
			return false
		}
	}
	return true
}

// originNotice says on stderr what the origin metadata could not tell.
func originNotice(q *sliceReq, w io.Writer) {
	if q.sel != nil {
		if n := q.sel.noMeta.Load(); n > 0 {
			fmt.Fprintf(w, "fmslice: %d packets of the range have no stored origin (chunks written before origins were kept, or damaged metadata): the origin selection left them out\n", n)
		}
	}
	metaBadNotice(q.metaBad.Load(), w)
}

// metaBadNotice says how many frames read had damaged origin metadata.
func metaBadNotice(n int64, w io.Writer) {
	if n > 0 {
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
