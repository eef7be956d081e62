package segment

// DecodePacket is query.DecodePacket, set by query_test.go: the format's
// tests build segments from real frames, and the decoder is query's (which
// imports this package, so only an external test file can reach it).
var DecodePacket func(f []byte, p *Packet)
