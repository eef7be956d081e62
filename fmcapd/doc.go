// Package fmcapd serves fmcap stores over HTTPS: the remote form of
// fmslice, for analysts who do not log into capture nodes.
//
// # API
//
//	GET /api/v1/pcap?from=T&to=T&filter=F&format=pcap|pcapng[&store=NAME][&incomplete=trailer|abort][&id=ID]
//	GET /api/v1/flows?from=T&to=T&filter=F&by=bytes|packets[&store=NAME]   (JSON)
//	GET /api/v1/timeline?from=T&to=T&step=D&filter=F[&store=NAME]        (JSON)
//	GET /api/v1/info[?store=NAME]                                          (JSON)
//	GET /api/v1/stores   the served stores' names, the default first        (JSON)
//	GET /api/v1/outcome?id=ID   how the asker's pcap query ID ended       (JSON)
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
// A store is a directory or an object store's NAME=s3://BUCKET/PREFIX/NODE
// (every endpoint answers what fmslice's command answers there). For
// those fmslice's environment holds the AWS chain's variables from
// fmcapd's (and HOME, XDG_CACHE_HOME), and fmslice's --cache is fmcapd's
// cache setting when given.
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
// Priority: each fmslice runs under ionice -c 2 -n 7 and nice -n 10
// (lowPriority), below capture: queries must not starve the writer.
//
// Limits, per client identity: concurrent queries (max_concurrent, default
// 4: more get 429), the time range of a query (max_range, default 24h, 0
// for none: a longer or open-ended range gets 400), the bytes of one answer (max_bytes,
// default none: the answer is cut and flagged), and the time of one query
// (query_timeout, default 10m: likewise).
//
// Stopping: on SIGTERM (or SIGINT) fmcapd stops accepting connections and
// lets the queries running finish for shutdown_grace (default 30s, 0 for
// none). Those still running then are cut: fmslice is killed, the answer
// ends with Fmcap-Complete: no and Fmcap-Error "fmcapd stopped:
// shutdown_grace (…) was over before the answer was complete" (503 if it
// had not started), the log says how many, and each is audited so. A
// client that does not read the rest of a cut answer within 10 s is
// disconnected. fmcapd exits once every query's audit line is written.
//
// Clients that cannot read trailers (a browser's fetch, curl) may ask a
// pcap answer with incomplete=abort: an answer found incomplete after it
// started is then aborted (HTTP/2 RST_STREAM; HTTP/1.1: the connection
// closed before the last chunk) instead of ended with the trailers, so the
// transfer fails rather than leaving a short file that looks whole (curl
// exits non-zero; the page shows the error). The default,
// incomplete=trailer, ends the body and flags it in the trailers. Such a
// client may name the query (id=, 8 to 64 letters, digits, - or _) and
// then ask GET /api/v1/outcome?id= for {"complete","error","bytes"}: the
// reason the stream was broken off. Outcomes are kept 10 minutes (the
// last 1024), and each client sees only its own.
//
// Audit: one JSON line per request (time, client, remote address,
// endpoint, store, range, filter, format, HTTP status, bytes sent,
// complete, error, duration) to the audit file (audit_log) or standard
// error.
package fmcapd
