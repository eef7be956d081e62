package fwd

// The control socket: run-time edits of the rules and routes, of an
// appliance port's capture, snap and VNIs (portedit.go), and statistics.
// Each edit is checked as a whole rule (or route) set, written to the configuration
// file (so it survives a restart), and only then swapped into the datapath
// as a new table; a refused edit changes nothing. Edits are serialised.
//
// Not editable here (a restart changes them): a port's role and device,
// an appliance's rule id and its health check (port, protocol, path).
// They change what the port is, or what the load balancer probes, which
// is configured with it; portedit.go says more.

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fmcap/fmcap/internal/ctl"
)

type control struct {
	mu    sync.Mutex
	cfg   *Config
	ports []Port
	d     *Datapath
	log   *slog.Logger
	ln    net.Listener
}

// listenControl opens the socket (mode 0600), replacing a stale one left by
// a process that died, but never one that still answers.
func listenControl(path string, c *control) error {
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return fmt.Errorf("control socket %s: another fwd is listening on it", path)
	}
	os.Remove(path)
	old := umask(0o177)
	ln, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	c.ln = ln
	go c.serve()
	return nil
}

func (c *control) close() {
	if c.ln != nil {
		c.ln.Close()
	}
}

func (c *control) serve() {
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			c.log.Warn("control accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go c.handle(conn)
	}
}

func (c *control) handle(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	var req ctl.Request
	var resp ctl.Response
	if err := json.NewDecoder(conn).Decode(&req); err != nil {
		resp.Error = "bad request: " + err.Error()
	} else if err := c.do(&req, &resp); err != nil {
		resp.Error = err.Error()
	} else {
		resp.OK = true
	}
	json.NewEncoder(conn).Encode(&resp)
}

func (c *control) do(req *ctl.Request, resp *ctl.Response) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, verb, _ := strings.Cut(req.Cmd, ".")
	switch req.Cmd {
	case "rules.list":
		resp.Rules = c.cfg.Fwd.Rules
		return nil
	case "routes.list":
		resp.Routes = c.cfg.Fwd.Routes
		return nil
	case "ports.list":
		resp.Ports = listPorts(c.ports)
		return nil
	case "ports.set-capture", "ports.set-vni":
		ports, handEdited, err := c.cfg.editPort(c.ports, portEdit{verb: verb, port: req.Port, capture: req.Mode, snap: req.Snap, vni: req.VNI})
		if err != nil {
			c.log.Warn("port edit refused", "cmd", req.Cmd, "port", req.Port, "err", err)
			return err
		}
		c.ports = ports
		rules, err := c.runningRules()
		if err != nil {
			return err
		}
		c.swap(rules, handEdited, req.Cmd+" "+req.Port, 0)
		resp.Ports = listPorts(c.ports)
		return nil
	case "stats":
		s := c.d.Stats()
		resp.Stats = &s
		return nil
	case "rules.add", "rules.del", "rules.set-mode":
		e, err := newEdit(ruleKind, verb, req.ID, req.Rule, req.Mode)
		if err != nil {
			return err
		}
		rules, handEdited, err := c.cfg.editRules(c.ports, e)
		if err != nil {
			c.log.Warn("rule edit refused", "cmd", req.Cmd, "id", e.id, "err", err)
			return err
		}
		c.swap(rules, handEdited, req.Cmd, e.id)
		resp.Rules = c.cfg.Fwd.Rules
		return nil
	case "routes.add", "routes.del", "routes.set-mode":
		e, err := newEdit(routeKind, verb, req.ID, req.Route, req.Mode)
		if err != nil {
			return err
		}
		rules, err := c.runningRules()
		if err != nil {
			return err
		}
		handEdited, err := c.cfg.editRoutes(c.ports, e)
		if err != nil {
			c.log.Warn("route edit refused", "cmd", req.Cmd, "id", e.id, "err", err)
			return err
		}
		c.swap(rules, handEdited, req.Cmd, e.id)
		resp.Routes = c.cfg.Fwd.Routes
		return nil
	}
	return fmt.Errorf("unknown command %q (rules.list, rules.add, rules.del, rules.set-mode, the same for routes, ports.list, ports.set-capture, ports.set-vni, stats)", req.Cmd)
}

// runningRules is the rules as they run, for a table rebuilt by an edit
// of something else (routes, a port): they were checked when they were
// set, so an error cannot happen.
func (c *control) runningRules() ([]Rule, error) {
	rules, _, _, err := checkRules(c.cfg.Fwd.Rules, c.ports)
	if err != nil {
		return nil, fmt.Errorf("the running rules: %w", err)
	}
	return rules, nil
}

// listPorts is the ports as they run, for ports.list and port edits.
func listPorts(ports []Port) []ctl.Port {
	out := make([]ctl.Port, len(ports))
	for i, p := range ports {
		out[i] = ctl.Port{Name: p.Name, Device: p.Device, Role: "none"}
		a := p.Appliance
		if a == nil {
			continue
		}
		o := &out[i]
		o.Role, o.Rule, o.Snap, o.Capture = a.Role.String(), a.Rule, a.Snap, "none"
		if a.Capture {
			o.Capture = "ingress"
		}
		if a.Role == RoleMirror {
			o.VNI = a.VNIs
			continue
		}
		h := a.Health
		o.Health = &ctl.Health{Protocol: "tcp", Port: h.Port}
		if h.HTTP {
			o.Health.Protocol, o.Health.Path, o.Health.RequireCapture = "http", h.Path, h.RequireCapture
		}
	}
	return out
}

// swap runs the new table: rules, and the configuration's routes.
func (c *control) swap(rules []Rule, handEdited bool, cmd string, id uint32) {
	if handEdited {
		// Not an error: the edit went into the current file. But the
		// operator should know that fwd runs other rules than the file's.
		c.log.Warn("the configuration file had been edited by hand: the edit was made to it, keeping the hand edits, which take effect when fwd restarts", "file", c.cfg.path)
	}
	t := buildTable(c.ports, rules).withRoutes(c.cfg.routes)
	c.d.Swap(t)
	// With the kernel fast path, the edit has taken effect when the map
	// the kernel forwards by says it (a rule now captured is no longer
	// forwarded there): the poll loop syncs it within its poll timeout.
	for i := 0; c.d.fpActive.Load() && c.d.fpSynced.Load() != t; i++ {
		if i == 2000 {
			c.log.Error("the kernel fast path did not take the new table in 2 s: frames of the rules edited may still be forwarded by the old one (see the fast path's warnings)", "cmd", cmd, "id", id)
			break
		}
		time.Sleep(time.Millisecond)
	}
	c.log.Info("table changed", "cmd", cmd, "id", id, "rules", len(rules), "routes", len(c.cfg.routes))
}
