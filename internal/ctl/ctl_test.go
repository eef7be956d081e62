package ctl

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// socketPath is a path for a socket in a directory of the test's own; a
// socket's path must fit 108 bytes, which a long $TMPDIR can exceed.
func socketPath(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) > 80 {
		d, err := os.MkdirTemp("/tmp", "ctl")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	}
	return filepath.Join(dir, "fwd.sock")
}

// server plays fwd's side of the socket: for each connection it reads one
// request line, hands it to the test, and writes back what answer returns
// for it ("" closes the connection without an answer).
func server(t *testing.T, answer func(req string) string) (path string, reqs <-chan string) {
	t.Helper()
	path = socketPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 16)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				line = "read error: " + err.Error()
			}
			ch <- line
			if a := answer(line); a != "" {
				io.WriteString(c, a)
			}
			c.Close()
		}
	}()
	return path, ch
}

// next is the request the server read for the Call just made.
func next(t *testing.T, reqs <-chan string) string {
	t.Helper()
	select {
	case r := <-reqs:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("the server got no request")
		return ""
	}
}

// The request on the wire is the protocol fwd decodes: one JSON object per
// connection, its keys as fwd's control.go reads them, zero values left
// out.
func TestCallRequestOnTheWire(t *testing.T) {
	path, reqs := server(t, func(string) string { return `{"ok":true}` + "\n" })
	for _, tc := range []struct {
		req  Request
		want string
	}{
		{Request{Cmd: "rules.list"}, `{"cmd":"rules.list"}`},
		{Request{Cmd: "stats"}, `{"cmd":"stats"}`},
		{Request{Cmd: "rules.del", ID: 7}, `{"cmd":"rules.del","id":7}`},
		{Request{Cmd: "rules.set-mode", ID: 3, Mode: "none"}, `{"cmd":"rules.set-mode","id":3,"mode":"none"}`},
		{
			Request{Cmd: "rules.add", Rule: &Rule{ID: 2, In: "p0", Local: "10.0.0.1", Peer: "10.0.0.2", Out: "p1", OutLocal: "10.1.0.1", Target: "10.1.0.2"}},
			`{"cmd":"rules.add","rule":{"id":2,"in":"p0","local":"10.0.0.1","peer":"10.0.0.2","out":"p1","out_local":"10.1.0.1","target":"10.1.0.2"}}`,
		},
		{
			Request{Cmd: "rules.add", Rule: &Rule{ID: 4, In: "p0", Local: "fd00::1", Peer: "fd00::2", Out: "p1", OutLocal: "fd01::1", Target: "fd01::2", Snap: 128, Capture: "ingress", IPOptions: "pass"}},
			`{"cmd":"rules.add","rule":{"id":4,"in":"p0","local":"fd00::1","peer":"fd00::2","out":"p1","out_local":"fd01::1","target":"fd01::2","snap":128,"capture":"ingress","ip_options":"pass"}}`,
		},
	} {
		if _, err := Call(path, tc.req); err != nil {
			t.Fatalf("%s: %v", tc.req.Cmd, err)
		}
		if got := next(t, reqs); got != tc.want+"\n" {
			t.Errorf("%s: sent\n%s\nwant\n%s", tc.req.Cmd, got, tc.want)
		}
	}
}

// An answer with ok comes back whole, its rules and statistics decoded.
func TestCallAnswer(t *testing.T) {
	answer := `{"ok":true,"rules":[{"id":1,"in":"p0","local":"10.0.0.1","peer":"10.0.0.2","out":"p1","out_local":"10.1.0.1","target":"10.1.0.2","capture":"none"}],` +
		`"stats":{"forwarded":5,"drops":{"no_rule":2},"captured":4,"capture_drops":1,"super_frames":0,"icmp_too_big_sent":3,` +
		`"ports":[{"name":"p0","rx_packets":7,"rx_bytes":700,"tx_packets":6,"tx_bytes":600,"nic_drops":1,"tx_stalls":2,"tx_stalled":true}],` +
		`"rules":[{"id":1,"mode":"none","fwd_packets":3,"fwd_bytes":300,"rev_packets":2,"rev_bytes":200}],` +
		`"neighbors":[{"port":"p1","ip":"10.1.0.2","mac":"02:00:00:00:00:02","state":"reachable","queued":0}]}}` + "\n"
	path, reqs := server(t, func(string) string { return answer })
	resp, err := Call(path, Request{Cmd: "stats"})
	if err != nil {
		t.Fatal(err)
	}
	next(t, reqs)
	want := &Response{
		OK:    true,
		Rules: []Rule{{ID: 1, In: "p0", Local: "10.0.0.1", Peer: "10.0.0.2", Out: "p1", OutLocal: "10.1.0.1", Target: "10.1.0.2", Capture: "none"}},
		Stats: &Stats{
			Forwarded: 5, Drops: map[string]uint64{"no_rule": 2}, Captured: 4, CaptureDrops: 1, TooBigSent: 3,
			Ports:     []PortStats{{Name: "p0", RxPackets: 7, RxBytes: 700, TxPackets: 6, TxBytes: 600, NICDrops: 1, TxStalls: 2, TxStalled: true}},
			Rules:     []RuleStats{{ID: 1, Mode: "none", FwdPackets: 3, FwdBytes: 300, RevPackets: 2, RevBytes: 200}},
			Neighbors: []Neighbor{{Port: "p1", IP: "10.1.0.2", MAC: "02:00:00:00:00:02", State: "reachable"}},
		},
	}
	if !reflect.DeepEqual(resp, want) {
		t.Errorf("got %+v\nwant %+v", resp, want)
	}
	// And the same bytes come out again: fmctl --json prints these
	// structures, so their keys are an interface too.
	b, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	if string(b)+"\n" != answer {
		t.Errorf("re-encoded\n%s\nwant\n%s", b, answer)
	}
}

// A refused command is an error carrying fwd's reason as it is, and the
// answer is still returned.
func TestCallRefused(t *testing.T) {
	path, reqs := server(t, func(string) string {
		return `{"ok":false,"error":"rule 9: no such rule (rules: 1, 2)"}` + "\n"
	})
	resp, err := Call(path, Request{Cmd: "rules.del", ID: 9})
	next(t, reqs)
	if err == nil || err.Error() != "rule 9: no such rule (rules: 1, 2)" {
		t.Errorf("error %v, want fwd's reason", err)
	}
	if resp == nil || resp.OK || resp.Error != "rule 9: no such rule (rules: 1, 2)" {
		t.Errorf("answer %+v", resp)
	}
}

// Failures before an answer name the socket, and the cause stays testable.
func TestCallFailures(t *testing.T) {
	t.Run("no socket", func(t *testing.T) {
		path := socketPath(t)
		_, err := Call(path, Request{Cmd: "stats"})
		if err == nil || !strings.HasPrefix(err.Error(), "control socket "+path+": ") ||
			!strings.HasSuffix(err.Error(), " (is fwd running with this control path?)") || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("stale socket", func(t *testing.T) {
		// What a fwd that died leaves behind: the file, nobody listening.
		path := socketPath(t)
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close()
		_, err = Call(path, Request{Cmd: "stats"})
		if err == nil || !strings.HasPrefix(err.Error(), "control socket "+path+": ") || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("no answer", func(t *testing.T) {
		path, reqs := server(t, func(string) string { return "" })
		_, err := Call(path, Request{Cmd: "stats"})
		next(t, reqs)
		if err == nil || err.Error() != "control socket "+path+": reading the answer: EOF" || !errors.Is(err, io.EOF) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		path, reqs := server(t, func(string) string { return "HTTP/1.1 400 Bad Request\r\n\r\n" })
		_, err := Call(path, Request{Cmd: "stats"})
		next(t, reqs)
		if err == nil || !strings.HasPrefix(err.Error(), "control socket "+path+": reading the answer: ") {
			t.Errorf("got %v", err)
		}
	})
}
