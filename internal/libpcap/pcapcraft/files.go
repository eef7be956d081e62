package pcapcraft

import "math"

// File is a crafted capture file: testdata/intake/Name holds Bytes.
type File struct {
	Name  string
	What  string // for testdata/intake/README.md
	Bytes []byte
}

// base is 2023-11-14 22:13:20 UTC.
const base = 1_700_000_000

// Files are the crafted files of testdata/intake.
func Files() []File {
	var fs []File
	add := func(name, what string, b []byte) { fs = append(fs, File{name, what, b}) }

	add("overlong.pcap", "pcap, snaplen 96, ns: records whose captured length exceeds the snaplen (200 and 1500 bytes: libpcap cuts them to 96) and one whose captured length (70) exceeds its wire length (64: libpcap passes it on as it is)",
		Pcap(MagicNano, 96, LinkEthernet,
			R(base, 1, Frame(60, 1), 60),
			R(base, 2, Frame(200, 2), 200),
			R(base+1, 3, Frame(96, 3), 96),
			R(base+1, 4, Frame(1500, 4), 1514),
			R(base+2, 5, Frame(70, 5), 64),
			R(base+3, 6, Frame(64, 6), 64)))

	big := Rec{Sec: base + 1, Caplen: 300000, Len: 300000, Data: Frame(64, 2)}
	add("over-max.pcap", "pcap, snaplen 65535: the second record says 300000 captured bytes, beyond libpcap's 262144 maximum for Ethernet; libpcap refuses it",
		Pcap(MagicMicro, 65535, LinkEthernet, R(base, 0, Frame(60, 1), 60), big))

	add("linktype-257.pcap", "pcap, link type 257 (PROFIBUS_DL): 257 mod 256 is 1, Ethernet, which an 8-bit reading mistakes it for",
		Pcap(MagicMicro, 65535, LinkProfibusDL, R(base, 0, Frame(60, 1), 60)))

	add("dsa-brcm.pcap", "pcap, link type 281 (DSA_TAG_BRCM): Ethernet frames with a 4-byte Broadcom switch tag after the source address",
		Pcap(MagicMicro, 65535, LinkDSATagBRCM, R(base, 0, Frame(64, 1), 64)))

	add("mixed-linktypes.pcapng", "pcapng, interface 0 Ethernet, interface 1 LINUX_SLL (113), packets on both: libpcap refuses the second interface",
		Pcapng([]Iface{{LinkType: LinkEthernet}, {LinkType: LinkLinuxSLL}},
			P(0, base*1e6, Frame(60, 1), 60), P(1, base*1e6+1, Frame(60, 2), 60), P(0, base*1e6+2, Frame(60, 3), 60)))

	const ns = 1e9
	add("far-future.pcapng", "pcapng, ns resolution: packets in 2023, at 2106-02-07 06:28:15 (the last second pcap's 32 bits hold), one second later, and in 2200 (64-bit times)",
		Pcapng([]Iface{{LinkType: LinkEthernet, TSResol: 9}},
			P(0, base*ns+123, Frame(60, 1), 60),
			P(0, (1<<32-1)*ns+999_999_999, Frame(60, 2), 60),
			P(0, (1<<32)*ns+5, Frame(60, 3), 60),
			P(0, 7_258_118_400*ns+42, Frame(60, 4), 60))) // 2200-01-01

	add("beyond-2262.pcapng", "pcapng, ns resolution: a packet in 2023 and one in 2300, after the last time a signed 64-bit count of nanoseconds holds (2262-04-11)",
		Pcapng([]Iface{{LinkType: LinkEthernet, TSResol: 9}},
			P(0, base*ns, Frame(60, 1), 60),
			P(0, 10_413_792_000*ns, Frame(60, 2), 60))) // 2300-01-01

	add("truncated.pcap", "pcap: the file ends 60 bytes into the third record's 100 captured bytes",
		Pcap(MagicMicro, 65535, LinkEthernet,
			R(base, 0, Frame(60, 1), 60), R(base, 1, Frame(80, 2), 80),
			Rec{Sec: base, Frac: 2, Caplen: 100, Len: 100, Data: Frame(60, 3)}))

	add("ng-overlong.pcapng", "pcapng, interface snaplen 128: the second packet has 200 captured bytes; libpcap refuses it (it cuts only pcap records)",
		Pcapng([]Iface{{LinkType: LinkEthernet, Snaplen: 128}},
			P(0, base*1e6, Frame(60, 1), 60), P(0, base*1e6+1, Frame(200, 2), 200)))

	add("ng-snaplen0.pcapng", "pcapng, interface snaplen 0 (no limit): 1500- and 9000-byte packets; libpcap reads them all",
		Pcapng([]Iface{{LinkType: LinkEthernet, Snaplen: 0}},
			P(0, base*1e6, Frame(1500, 1), 1500), P(0, base*1e6+1, Frame(9000, 2), 9000)))

	add("after-2038.pcap", "pcap, µs: seconds 2147483648 (2038-01-19, the first past a signed 32-bit count) and 4000000000 (2096); pcap's seconds are unsigned",
		Pcap(MagicMicro, 65535, LinkEthernet,
			R(math.MaxInt32+1, 7, Frame(60, 1), 60), R(4_000_000_000, 8, Frame(60, 2), 60)))
	return fs
}
