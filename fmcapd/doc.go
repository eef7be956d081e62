// Package fmcapd serves fmcap stores over HTTPS: the remote form of
// fmslice, for analysts who do not log into capture nodes.
//
// # API
//
//	GET /api/v1/pcap?from=T&to=T&filter=F&format=pcap|pcapng[&store=NAME]
//	GET /api/v1/flows?from=T&to=T&filter=F&by=bytes|packets[&store=NAME]   (JSON)
//	GET /api/v1/timeline?from=T&to=T&step=D&filter=F[&store=NAME]        (JSON)
//	GET /api/v1/info[?store=NAME]                                          (JSON)
//	GET /api/v1/stores   the served stores' names, the default first        (JSON)
//	GET /                the page (web.go): timeline, range, filter, talkers, download
//	GET /metrics   Prometheus text
//	GET /healthz   200 "ok"
//
// Times take fmslice's forms (RFC 3339, Unix seconds, now, -5m, now-1h);
// relative ones are resolved once, when the request arrives, and the query
// runs on the absolute range. Every answer is what fmslice prints for the
// same arguments, byte for byte: fmcapd runs the fmslice binary for each
// query (its own process group, an environment of PATH only), streams its
// standard output as it comes, and kills the group when the client goes
// away, the query times out or a byte limit is reached. Running the
// command, not a copy of its code, is what keeps the two identical.
//
// A request fmslice refuses before writing anything (a bad time, a filter
// libpcap does not compile, a range the store does not hold) is answered
// 400 with fmslice's message. Once a pcap answer has started, its status is
// 200, and completeness comes last, as HTTP trailers announced in the
// header (Trailer: Fmcap-Complete, Fmcap-Error):
//
//	Fmcap-Complete: yes   every packet of the range that matches is in the body
//	Fmcap-Complete: no    some are missing (fmslice's exit status 3: damaged
//	                      frames; or fmcapd stopped the query: timeout, byte
//	                      limit, an error); Fmcap-Error says which
//
// A client that reads the body to its end and finds no "Fmcap-Complete:
// yes" trailer must treat the answer as incomplete (fmslice --server does).
//
// # Access
//
// TLS with the server's certificate (tls_cert, tls_key). Clients identify
// with a certificate signed by client_ca (mutual TLS; the name is its
// subject's common name), or a bearer token (Authorization: Bearer T) whose
// SHA-256 is listed in tokens (the name is the token's). A request with
// neither, a certificate of another CA, an expired one or a token not
// listed is refused (401) and audited. Without TLS, fmcapd listens only on a
// loopback address; without client_ca and tokens, it refuses every query
// unless it listens on loopback (then anyone on the host may query, as they
// may run fmslice).
//
// Limits, per client identity: concurrent queries (max_concurrent, default
// 4: more get 429), the time range of a query (max_range, default 24h, 0
// for none: a longer or open-ended range gets 400), the bytes of one answer (max_bytes,
// default none: the answer is cut and flagged), and the time of one query
// (query_timeout, default 10m: likewise).
//
// Audit: one JSON line per request (time, client, remote address,
// endpoint, store, range, filter, format, HTTP status, bytes sent,
// complete, error, duration) to the audit file (audit_log) or standard
// error.
package fmcapd
