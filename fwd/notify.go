package main

// systemd readiness: a datagram "READY=1" to $NOTIFY_SOCKET, when there is
// one (Type=notify units). Nothing happens outside systemd.

import (
	"net"
	"os"
)

func notifyReady() { sdNotify("READY=1") }

func sdNotify(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	c.Write([]byte(state))
	c.Close()
}
