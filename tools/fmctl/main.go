// Command fmctl talks to a running fwd through its control socket: list,
// add and delete forwarding rules and routes, change a rule's or route's
// capture mode, list the ports and change an appliance port's (gwlb,
// mirror) capture, snap and VNIs, and print statistics. Edits take effect at once, without pausing traffic, and are
// written to fwd's configuration file first: to the file as it is then, so
// hand edits made while fwd runs are kept. fwd refuses an edit (and says
// why; nothing changes) when the file no longer passes its checks or was
// edited by hand on the same rule (see fwd/writeback.go).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/fmcap/fmcap/internal/cliutil"
	"github.com/fmcap/fmcap/internal/ctl"
	"github.com/fmcap/fmcap/internal/version"
)

const defaultSocket = "/run/fmcap/fwd.sock"

func main() {
	socket := &cli.StringFlag{Name: "socket", Value: defaultSocket, Usage: "fwd's control socket; without it, fwd.control of --config, else the default"}
	config := &cli.StringFlag{Name: "config", Usage: "the fmcap configuration file: the socket, and for stats the ring and the writer's and indexer's metrics"}
	jsonFlag := &cli.BoolFlag{Name: "json", Usage: "print JSON for programs"}
	app := &cli.App{
		Name:  "fmctl",
		Usage: "control a running fwd",
		Flags: cliutil.Env("fmctl", []cli.Flag{socket, config}, map[string]string{"socket": "fwd.control"}),
		Commands: []*cli.Command{
			{
				Name:  "rules",
				Usage: "list or edit the forwarding rules",
				Subcommands: commands("rule", jsonFlag,
					&cli.Command{
						Name:  "add",
						Usage: "add a rule: packets on --in to --local from --peer go out of --out from --out-local to --target",
						Flags: []cli.Flag{
							&cli.UintFlag{Name: "id", Required: true, Usage: "rule number, > 0"},
							&cli.StringFlag{Name: "in", Required: true, Usage: "port where the peer's packets arrive"},
							&cli.StringFlag{Name: "local", Required: true, Usage: "local address the peer sends to (X)"},
							&cli.StringFlag{Name: "peer", Required: true, Usage: "the peer (A)"},
							&cli.StringFlag{Name: "out", Required: true, Usage: "port the packets leave on"},
							&cli.StringFlag{Name: "out-local", Required: true, Usage: "local source address on --out (Y)"},
							&cli.StringFlag{Name: "target", Required: true, Usage: "the target (B)"},
							&cli.UintFlag{Name: "snap", Value: 65535, Usage: "bytes kept per captured packet"},
							&cli.StringFlag{Name: "mode", Value: "both", Usage: "capture mode: ingress, egress, inline, both, none"},
							&cli.StringFlag{Name: "ip-options", Usage: "IPv4 options other than source routes: drop (default) or pass (source routes are always dropped)"},
							jsonFlag,
						},
						Action: func(cc *cli.Context) error {
							return call(cc, ctl.Request{Cmd: "rules.add", Rule: &ctl.Rule{
								ID: uint32(cc.Uint("id")), In: cc.String("in"), Local: cc.String("local"), Peer: cc.String("peer"),
								Out: cc.String("out"), OutLocal: cc.String("out-local"), Target: cc.String("target"),
								Snap: uint32(cc.Uint("snap")), Capture: cc.String("mode"), IPOptions: cc.String("ip-options"),
							}})
						},
					}),
			},
			{
				Name:  "routes",
				Usage: "list or edit the router role's routes (fwd.routes)",
				Subcommands: commands("route", jsonFlag,
					&cli.Command{
						Name:  "add",
						Usage: "add a route: packets to --prefix (arriving on --in, default any port) go to --via out of --out, addresses untouched",
						Flags: []cli.Flag{
							&cli.UintFlag{Name: "id", Required: true, Usage: "route number, > 0, no rule's (it names the route's counters)"},
							&cli.StringFlag{Name: "prefix", Required: true, Usage: "destination prefix, IPv4 or IPv6 (198.18.50.0/24, 2001:db8::/32)"},
							&cli.StringFlag{Name: "via", Required: true, Usage: "next hop, of the prefix's family, on --out's subnets"},
							&cli.StringFlag{Name: "out", Required: true, Usage: "port the packets leave on"},
							&cli.StringSliceFlag{Name: "in", Usage: "ports the route takes packets from (repeat or comma-separate; default every port)"},
							&cli.UintFlag{Name: "snap", Value: 65535, Usage: "bytes kept per captured packet"},
							&cli.StringFlag{Name: "mode", Value: "both", Usage: "capture mode: ingress, egress, inline, both, none"},
							jsonFlag,
						},
						Action: func(cc *cli.Context) error {
							return call(cc, ctl.Request{Cmd: "routes.add", Route: &ctl.Route{
								ID: uint32(cc.Uint("id")), Prefix: cc.String("prefix"), Via: cc.String("via"), Out: cc.String("out"),
								In: cc.StringSlice("in"), Snap: uint32(cc.Uint("snap")), Capture: cc.String("mode"),
							}})
						},
					}),
			},
			{
				Name:  "ports",
				Usage: "list the ports (fmctl ports), or edit an appliance port's capture or VNIs; its role, device, rule id and health check change only with a restart",
				Flags: []cli.Flag{jsonFlag},
				Action: func(cc *cli.Context) error {
					return call(cc, ctl.Request{Cmd: "ports.list"})
				},
				Subcommands: []*cli.Command{
					{Name: "list", Usage: "print the ports: name, device, role (none, gwlb, mirror), an appliance's settings", Flags: []cli.Flag{jsonFlag}, Action: func(cc *cli.Context) error {
						return call(cc, ctl.Request{Cmd: "ports.list"})
					}},
					{
						Name:      "set-capture",
						Usage:     "capture a gwlb or mirror port's inner packets (ingress) or not (none); frames are returned (gwlb) either way",
						ArgsUsage: "PORT ingress|none",
						Flags:     []cli.Flag{&cli.UintFlag{Name: "snap", Usage: "bytes kept of each inner packet, 14..65535 (default: keep the port's)"}, jsonFlag},
						Action: func(cc *cli.Context) error {
							if cc.NArg() != 2 {
								return fmt.Errorf("usage: fmctl ports set-capture [--snap N] PORT ingress|none (flags before PORT)")
							}
							return call(cc, ctl.Request{Cmd: "ports.set-capture", Port: cc.Args().Get(0), Mode: cc.Args().Get(1), Snap: uint32(cc.Uint("snap"))})
						},
					},
					{
						Name:      "set-vni",
						Usage:     "the mirror sessions (VNIs) a mirror port captures; any: all of them",
						ArgsUsage: "PORT any|VNI[,VNI...]",
						Flags:     []cli.Flag{jsonFlag},
						Action: func(cc *cli.Context) error {
							if cc.NArg() != 2 {
								return fmt.Errorf("usage: fmctl ports set-vni PORT any|VNI[,VNI...] (flags before PORT)")
							}
							vni, err := vniArg(cc.Args().Get(1))
							if err != nil {
								return err
							}
							return call(cc, ctl.Request{Cmd: "ports.set-vni", Port: cc.Args().Get(0), VNI: vni})
						},
					},
				},
			},
			{Name: "stats", Usage: "print fwd's counters", Flags: []cli.Flag{jsonFlag}, Action: func(cc *cli.Context) error {
				return call(cc, ctl.Request{Cmd: "stats"})
			}},
		},
	}
	version.Setup(app)
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "fmctl:", err)
		os.Exit(1)
	}
}

// commands are the subcommands of rules or routes (what: "rule" or
// "route"): list, add (the one given), del and set-mode.
func commands(what string, jsonFlag cli.Flag, add *cli.Command) []*cli.Command {
	return []*cli.Command{
		{Name: "list", Usage: "print the " + what + "s in force", Flags: []cli.Flag{jsonFlag}, Action: func(cc *cli.Context) error {
			return call(cc, ctl.Request{Cmd: what + "s.list"})
		}},
		add,
		{Name: "del", Usage: "delete " + what + " ID", ArgsUsage: "ID", Flags: []cli.Flag{jsonFlag}, Action: func(cc *cli.Context) error {
			id, err := idArg(cc, 0, what)
			if err != nil {
				return err
			}
			return call(cc, ctl.Request{Cmd: what + "s.del", ID: id})
		}},
		{Name: "set-mode", Usage: "change " + what + " ID's capture mode", ArgsUsage: "ID ingress|egress|inline|both|none", Flags: []cli.Flag{jsonFlag}, Action: func(cc *cli.Context) error {
			id, err := idArg(cc, 0, what)
			if err != nil {
				return err
			}
			if cc.NArg() != 2 {
				return fmt.Errorf("usage: fmctl %ss set-mode ID MODE", what)
			}
			return call(cc, ctl.Request{Cmd: what + "s.set-mode", ID: id, Mode: cc.Args().Get(1)})
		}},
	}
}

// idArg is argument i as a rule's or route's id (what says which).
func idArg(cc *cli.Context, i int, what string) (uint32, error) {
	var id uint32
	if _, err := fmt.Sscan(cc.Args().Get(i), &id); err != nil || id == 0 {
		return 0, fmt.Errorf("%s id %q: give a number > 0", what, cc.Args().Get(i))
	}
	return id, nil
}

// vniArg is set-vni's list: nil for any.
func vniArg(s string) ([]uint32, error) {
	if s == "any" {
		return nil, nil
	}
	var vni []uint32
	for _, f := range strings.Split(s, ",") {
		var v uint32
		if _, err := fmt.Sscan(f, &v); err != nil || strconv.FormatUint(uint64(v), 10) != f {
			return nil, fmt.Errorf("vni %q: give any, or VNIs (numbers) separated by commas", s)
		}
		vni = append(vni, v)
	}
	return vni, nil
}

// socketPath: --socket, else fwd.control of --config, else the default.
func socketPath(cc *cli.Context) string {
	if !cc.IsSet("socket") && cc.String("config") != "" {
		if v, ok, err := cliutil.ConfigValue(cc.String("config"), "fwd", "control"); err == nil && ok {
			return v
		}
	}
	return cc.String("socket")
}

func call(cc *cli.Context, req ctl.Request) error {
	resp, err := ctl.Call(socketPath(cc), req)
	if err != nil {
		return err
	}
	routes := strings.HasPrefix(req.Cmd, "routes.")
	ports := strings.HasPrefix(req.Cmd, "ports.")
	if cc.Bool("json") {
		e := json.NewEncoder(os.Stdout)
		e.SetIndent("", "  ")
		if resp.Stats != nil {
			return e.Encode(resp.Stats)
		}
		if ports {
			if resp.Ports == nil {
				return e.Encode([]ctl.Port{})
			}
			return e.Encode(resp.Ports)
		}
		if routes {
			if resp.Routes == nil {
				return e.Encode([]ctl.Route{}) // as for rules, below
			}
			return e.Encode(resp.Routes)
		}
		if resp.Rules == nil {
			// fwd leaves an empty rule set out of its answer (omitempty);
			// a program reading the list gets an empty list, not null.
			return e.Encode([]ctl.Rule{})
		}
		return e.Encode(resp.Rules)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	defer w.Flush()
	if s := resp.Stats; s != nil {
		printStats(w, s)
		if cfg := cc.String("config"); cfg != "" {
			w.Flush()
			pipelineStats(cfg)
		}
		return nil
	}
	if routes {
		printRoutes(w, resp.Routes)
		return nil
	}
	if ports {
		printPorts(w, resp.Ports)
		return nil
	}
	fmt.Fprintln(w, "ID\tIN\tLOCAL\tPEER\tOUT\tOUT_LOCAL\tTARGET\tSNAP\tCAPTURE")
	for _, r := range resp.Rules {
		mode := r.Capture
		if mode == "" {
			mode = "both"
		}
		snap := r.Snap
		if snap == 0 {
			snap = 65535
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.In, r.Local, r.Peer, r.Out, r.OutLocal, r.Target, snap, mode)
	}
	return nil
}

// printRoutes prints the routes, their defaults spelled out.
func printRoutes(w *tabwriter.Writer, routes []ctl.Route) {
	fmt.Fprintln(w, "ID\tPREFIX\tVIA\tOUT\tIN\tSNAP\tCAPTURE")
	for _, r := range routes {
		in := strings.Join(r.In, ",")
		if in == "" {
			in = "any"
		}
		mode := r.Capture
		if mode == "" {
			mode = "both"
		}
		snap := r.Snap
		if snap == 0 {
			snap = 65535
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.Prefix, r.Via, r.Out, in, snap, mode)
	}
}

// printPorts prints the ports; "-" where a setting is not the port's.
func printPorts(w *tabwriter.Writer, ports []ctl.Port) {
	fmt.Fprintln(w, "PORT\tDEVICE\tROLE\tRULE\tCAPTURE\tSNAP\tVNI\tHEALTH_CHECK")
	for _, p := range ports {
		if p.Role == "none" {
			fmt.Fprintf(w, "%s\t%s\tnone\t-\t-\t-\t-\t-\n", p.Name, p.Device)
			continue
		}
		vni, health := "-", "-"
		if p.Role == "mirror" {
			vni = "any"
			if len(p.VNI) > 0 {
				vs := make([]string, len(p.VNI))
				for i, v := range p.VNI {
					vs[i] = strconv.FormatUint(uint64(v), 10)
				}
				vni = strings.Join(vs, ",")
			}
		}
		if h := p.Health; h != nil {
			health = fmt.Sprintf("%s:%d%s", h.Protocol, h.Port, h.Path)
			if h.RequireCapture {
				health += " (503 while captures drop)"
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\n", p.Name, p.Device, p.Role, p.Rule, p.Capture, p.Snap, vni, health)
	}
}

func printStats(w *tabwriter.Writer, s *ctl.Stats) {
	fmt.Fprintf(w, "forwarded\t%d\ncaptured\t%d\ncapture drops (ring full)\t%d\n", s.Forwarded, s.Captured, s.CaptureDrops)
	if s.KernelForwarded > 0 {
		fmt.Fprintf(w, "  of which by the kernel fast path\t%d\n", s.KernelForwarded)
	}
	if len(s.Drops) > 0 {
		keys := make([]string, 0, len(s.Drops))
		for k := range s.Drops {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintln(w, "\nnot forwarded, by reason:")
		for _, k := range keys {
			fmt.Fprintf(w, "  %s\t%d\n", strings.ReplaceAll(k, "_", " "), s.Drops[k])
		}
	}
	fmt.Fprintln(w, "\nPORT\tRX PKTS\tRX BYTES\tTX PKTS\tTX BYTES\tNIC DROPS\tTX STALLS")
	for _, p := range s.Ports {
		stalled := ""
		if p.TxStalled {
			stalled = " (stalled now)"
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d%s\n", p.Name, p.RxPackets, p.RxBytes, p.TxPackets, p.TxBytes, p.NICDrops, p.TxStalls, stalled)
	}
	fmt.Fprintln(w, "\nRULE\tCAPTURE\tA→B PKTS\tA→B BYTES\tB→A PKTS\tB→A BYTES")
	for _, r := range s.Rules {
		fmt.Fprintf(w, "%d\t%s\t%d\t%d\t%d\t%d\n", r.ID, r.Mode, r.FwdPackets, r.FwdBytes, r.RevPackets, r.RevBytes)
	}
	fmt.Fprintln(w, "\nNEIGHBOR\tPORT\tMAC\tSTATE\tQUEUED")
	for _, n := range s.Neighbors {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\n", n.IP, n.Port, n.MAC, n.State, n.Queued)
	}
}
