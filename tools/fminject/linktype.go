package main

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/fmcap/fmcap/internal/libpcap"
)

// The store is pcap with LINKTYPE_ETHERNET (store/chunk: PcapHeader), and
// fmslice compiles its filters for Ethernet, so the ring takes Ethernet
// frames only. Anything else is refused, never relabelled: the bytes of
// another link type stored as Ethernet would be misread by every tool.

// ethernetInAllButName are link types whose frames are Ethernet frames with
// something added: they look like Ethernet, and are the ones most tempting
// to store as such. Keys are DLT values (pcap_datalink); the text says why
// they are not Ethernet.
var ethernetInAllButName = map[int]string{
	281: "each frame carries a 4-byte Broadcom switch tag between the source address and the EtherType",
	282: "each frame starts with a 4-byte Broadcom switch tag, before the destination address",
	284: "each frame carries a 4-byte Marvell DSA tag between the source address and the EtherType",
	285: "each frame carries an 8-byte Marvell EDSA tag between the source address and the EtherType",
	240: "each frame starts with a 4-byte Hilscher netANALYZER header",
	241: "each frame starts with a Hilscher netANALYZER header, the preamble and the start-of-frame delimiter",
	274: "the records are IEEE 802.3br mPackets (preemption fragments with their preamble), not whole frames",
	291: "each frame starts with a Hilscher netANALYZER NG header",
}

// linkTypeName is how messages name a link type: libpcap's name and
// description, and the number.
func linkTypeName(dlt int) string {
	name, desc := libpcap.LinkTypeName(dlt), libpcap.LinkTypeDescription(dlt)
	if name == "" {
		return fmt.Sprintf("%d (unknown to %s)", dlt, libpcap.Version())
	}
	return fmt.Sprintf("%s (%d, %s)", name, dlt, desc)
}

// checkLinkType refuses a file whose link type is not Ethernet, saying why.
func checkLinkType(path string, dlt int) error {
	if dlt == libpcap.LinkTypeEthernet {
		return nil
	}
	what := fmt.Sprintf("%s: link type %s is not Ethernet", path, linkTypeName(dlt))
	if why, ok := ethernetInAllButName[dlt]; ok {
		return fmt.Errorf("%s: %s, so stored as Ethernet every packet would be misread (addresses, EtherType, filters); fmcap stores plain Ethernet frames only and does not strip what it cannot put back", what, why)
	}
	switch dlt {
	case 113, 276: // LINUX_SLL, LINUX_SLL2
		return fmt.Errorf("%s: a capture on Linux's \"any\" device has no Ethernet headers; fmcap stores Ethernet frames only: capture on an Ethernet interface", what)
	}
	return fmt.Errorf("%s: fmcap stores Ethernet frames only (editcap -T ether would only relabel the file, not convert its frames)", what)
}

// mixedRE matches libpcap's refusal of a pcapng interface whose link type
// differs from the first interface's (sf-pcapng.c, the same text from 1.10
// to 1.11).
var mixedRE = regexp.MustCompile(`an interface has a type (\d+) different from the type of the first interface`)

// explainMixed adds to libpcap's message for a pcapng with interfaces of
// several link types what it means here; other messages pass unchanged.
func explainMixed(msg string, first int) string {
	m := mixedRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	other, _ := strconv.Atoi(m[1])
	// The IDB holds a LINKTYPE_ value; for the types above 103 it is also
	// the DLT value libpcap names.
	return fmt.Sprintf("%s: the file's interfaces have different link types (%s first, then %s); libpcap reads no further (tcpdump stops there too), and fmcap stores Ethernet frames only. "+
		"To inject the Ethernet packets alone: tshark -r FILE -Y 'frame.encap_type == 1' -w - | editcap -F nsecpcap -T ether - ether.pcap",
		msg, linkTypeName(first), linkTypeName(other))
}
