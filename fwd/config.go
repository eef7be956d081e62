package fwd

// The configuration file is YAML (go.yaml.in/yaml/v3, chosen because its
// node tree keeps line numbers and comments: errors can name the line, and
// rule edits made through the control socket are written back without
// destroying the operator's comments or hand edits: writeback.go). Every
// fmcap process reads its own section of the same file through
// internal/cliutil, which refuses what every command refuses (a top-level
// key that is no process's section, a section that is not a mapping, a
// second document) and decodes fwd's `ring` and `fwd` sections into
// Config, naming the line of a key Config has no field for or of a value
// its field cannot hold. This file is the schema; check.go checks the
// settings and ports, rules.go the rules.
//
//	ring:
//	  path: /dev/hugepages/fmcap     # created by fmring create (see systemd/)
//	fwd:
//	  backend: afpacket              # afpacket (default) or dpdk
//	  control: /run/fmcap/fwd.sock   # control socket, mode 0600
//	  metrics: 127.0.0.1:9561        # Prometheus /metrics (the default); "" for none
//	  dpdk:
//	    eal: [--in-memory, -m, "256", --no-pci, -l, "1", --vdev=net_af_packet0,iface=eth1]
//	  ports:
//	    - name: p0                   # referred to by rules
//	      device: eth1               # afpacket: interface; dpdk: DPDK port name
//	      addresses: [198.18.1.1/24] # local addresses with their subnet
//	      gateway: 198.18.1.254      # next hop for targets off the subnet (optional)
//	  rules:
//	    - id: 1
//	      in: p0                     # A's packets arrive on this port...
//	      local: 198.18.1.1          # ...addressed to this local address X
//	      peer: 198.18.1.2           # ...from A
//	      out: p1                    # and leave on this port
//	      out_local: 198.18.2.1      # with this local source address Y
//	      target: 198.18.2.2         # to B
//	      snap: 65535                # bytes kept per captured packet
//	      capture: inline            # ingress, egress, inline, both or none
//	      ip_options: drop           # drop (default) or pass: IPv4 options other
//	                                 # than source routes (always dropped)
//	  capture_gso: segment           # a super-frame (TSO/GRO) is captured as its
//	                                 # on-wire segments (segment, the default) or
//	                                 # as one record (keep)
//	  spin: 50us                     # afpacket: keep polling this long after a
//	                                 # frame before sleeping (default 0: sleep)
//	  fastpath: auto                 # afpacket: frames of rules of capture none
//	                                 # forwarded in the kernel (tc BPF,
//	                                 # fastpath.go) where it can (auto, the
//	                                 # default), or fail to start (kernel); off:
//	                                 # every frame through fwd

import (
	"crypto/sha256"
	"fmt"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fmcap/fmcap/internal/cliutil"
	"github.com/fmcap/fmcap/internal/ctl"
)

// Config is the whole file. Sections of other processes are kept as
// written (nodes): their keys are theirs to check. A test keeps the
// sections here and cliutil.Sections equal.
type Config struct {
	Ring    RingConfig `yaml:"ring"`
	Fwd     FwdConfig  `yaml:"fwd"`
	Writer  yaml.Node  `yaml:"writer"`
	Indexer yaml.Node  `yaml:"indexer"`
	Slice   yaml.Node  `yaml:"slice"`
	Fmcapd  yaml.Node  `yaml:"fmcapd"`
	Upload  yaml.Node  `yaml:"upload"`

	path   string
	routes []Route       // checked fwd.routes (route.go)
	file   *cliutil.File // the document, for line numbers and write-back
	// hash is the SHA-256 of the file as fwd last read or wrote it: a
	// write-back that finds other bytes on disk knows the file was edited
	// by hand meanwhile (see writeback.go).
	hash [sha256.Size]byte
}

// RingConfig is the ring section. fwd uses the path; the rest is fmring's
// (fmring create --config), listed so that the shared file passes fwd's check.
type RingConfig struct {
	Path      string   `yaml:"path"`
	Size      string   `yaml:"size"`
	Consumers []string `yaml:"consumers"`
	MaxCaplen uint32   `yaml:"max_caplen"`
	FirstSeq  uint64   `yaml:"first_seq"`
}

type FwdConfig struct {
	Backend string     `yaml:"backend"`
	Control string     `yaml:"control"`
	Metrics *string    `yaml:"metrics"` // Prometheus address; default 127.0.0.1:9561, "" for none
	DPDK    DPDKConfig `yaml:"dpdk"`
	// CaptureGSO: "segment" (default) or "keep" (gso.go).
	CaptureGSO string `yaml:"capture_gso"`
	// Spin: how long the AF_PACKET loop keeps asking for frames after the
	// last before it sleeps (afpacket.go); "" or 0: it sleeps at once.
	Spin string        `yaml:"spin"`
	spin time.Duration // Spin, checked
	// FastPath: "auto" ("", the default) forwards the frames of rules
	// whose capture is none in the kernel where it can (fastpath.go);
	// "kernel" the same or fwd does not start; "off": through fwd.
	FastPath string `yaml:"fastpath"`

	Ports  []PortConfig  `yaml:"ports"`
	Rules  []RuleConfig  `yaml:"rules"`
	Routes []RouteConfig `yaml:"routes"` // route.go
}

type DPDKConfig struct {
	EAL []string `yaml:"eal"`
}

type PortConfig struct {
	Name      string   `yaml:"name"`
	Device    string   `yaml:"device"`
	Addresses []string `yaml:"addresses"`
	Gateway   string   `yaml:"gateway"`
	Gateway6  string   `yaml:"gateway6"`
	// Neighbors are static ARP entries (address: MAC), never aged: for
	// links where nobody answers ARP (net_null benchmarks) or where the
	// operator wants them pinned.
	Neighbors map[string]string `yaml:"neighbors"`
	// MTU (DPDK ports only): the largest IP packet the port takes and sends;
	// 0: the PMD's default (1500). An AF_PACKET port has its device's.
	// Checked at start against the PMD's min_mtu..max_mtu (mtuInRange).
	MTU int `yaml:"mtu"`
	// GWLB and Mirror give the port an appliance role (appliance_config.go).
	GWLB   *GWLBConfig   `yaml:"gwlb"`
	Mirror *MirrorConfig `yaml:"mirror"`
}

// RuleConfig is one rule as written in the file and on the control socket.
type RuleConfig = ctl.Rule

// ConfigError is an error in the file, with the line it is on.
type ConfigError = cliutil.Error

// LoadConfig reads and checks the file.
func LoadConfig(path string) (*Config, []Port, []Rule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("config: %w", err)
	}
	return parseConfig(path, b)
}

func parseConfig(path string, b []byte) (*Config, []Port, []Rule, error) {
	f, err := cliutil.ParseFile(path, b)
	if err != nil {
		return nil, nil, nil, err
	}
	c := &Config{path: path, file: f, hash: sha256.Sum256(b)}
	if err := f.Decode(c); err != nil {
		return nil, nil, nil, err
	}
	ports, rules, err := c.check()
	if err != nil {
		return nil, nil, nil, err
	}
	return c, ports, rules, nil
}
