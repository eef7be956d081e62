// Package objstore is the store's second tier: objects on an
// S3-compatible server (AWS S3, or any server that speaks its API, such as
// versitygw, MinIO, Ceph RGW), addressed as s3://BUCKET/PREFIX/KEY. The
// store will put its sealed chunks and index segments there under
// PREFIX/NODE/ with the local store's layout, and read frame tables, seek
// tables and index segments once and then only the frames a query needs,
// with range reads.
//
// It lives in store/ (not internal/) because it is one of the store's two
// backends, beside the local directory, and the store package that will
// plug both behind one interface is shared by the writer, the indexer and
// fmslice.
//
// # API
//
//	New(ctx, Config, *slog.Logger) (*Store, error)
//	(*Store).Check(ctx) error                              // one-key listing: settings right?
//	(*Store).Put(ctx, key, io.Reader, size) (Info, error)  // multipart above PartSize, CRC-32C checked
//	(*Store).GetRange(ctx, key, off, n) ([]byte, error)    // exactly n bytes, or ErrShort
//	(*Store).Stat(ctx, key) (Info, error)                  // ErrNotFound when absent
//	(*Store).List(ctx, prefix) ([]Info, error)             // complete objects only
//	(*Store).Delete(ctx, key) error
//	(*Store).AbortIncomplete(ctx, prefix, olderThan) (int, error)
//
// # Integrity
//
// Every object carries a CRC-32C of its whole content. A single PUT sends
// it (x-amz-checksum-crc32c) and the server checks it; a multipart upload
// sends each part's CRC-32C (checked by the server per part) and, at
// completion, the whole object's with checksum type FULL_OBJECT: the server
// combines the parts' CRCs, refuses a mismatch, and Put compares what the
// server reports with what it read. A full-object CRC-32C is the same
// value for an object however it was uploaded, so it can be compared with
// a local file's (SHA-256 is only composite, checksum-of-checksums, for
// multipart uploads). An object is visible only once complete: S3 never
// lists multipart uploads as objects, a failed Put aborts its upload, and
// AbortIncomplete removes what a crash left.
//
// Over HTTPS the bytes of a PUT or a part are not signed (x-amz-content-sha256:
// UNSIGNED-PAYLOAD), nor over plain HTTP with Config.SignPayload false (by
// default they are there, as the AWS SDK does): the SigV4 signature covers
// the request's headers, the CRC-32C among them, and the server refuses a
// body whose CRC-32C differs (BadDigest; TestUnsignedPayloadChecked
// corrupts a byte after the checksum is taken). Over plain HTTP a signed
// payload means SHA-256 of every byte by the client and again by the
// server: against versitygw on one 2-core machine, a third of fmupload's
// CPU per byte and a tenth of the server's (bench/RESULTS.md, "Does the
// upload keep pace").
// Corruption in transit is caught either way; what the SHA-256 adds is
// protection from an active attacker on a plain-HTTP path (a CRC can be
// forged), which HTTPS gives anyway.
//
// # Errors
//
// The settings are named in the errors: refused or missing credentials
// (ErrCredentials) name AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the
// config keys access_key_id / secret_access_key, whichever supplied them,
// and show only the first four characters of the key; a missing bucket
// (ErrNoBucket) names the bucket and the bucket setting; an unreachable
// server (ErrUnreachable) names the endpoint and the setting it came from
// (endpoint, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL); RequestTimeTooSkewed
// (ErrClockSkew) says to fix the clock. The secret key and session token
// are never in an error or a log line (Config has String, GoString and
// LogValue methods that hide them, and every error is scrubbed of them).
//
// # Choice of client: aws-sdk-go-v2 over minio-go
//
// Measured against versitygw v1.8.0 (posix backend on ext4) on loopback,
// this 2-core machine shared with other builds and tests (load average
// 10-14 during the runs, so absolute figures are low and noisy; the ratio
// is what matters). Uploads: 256 MiB from memory, 16 MiB parts, 4 in
// flight, CRC-32C on; over plain HTTP both clients also hash every part
// with SHA-256 for the signature (over HTTPS to AWS neither does). Ranges:
// 32 KiB at random offsets of a 64 MiB object, one at a time. Command:
//
//	cd store/objstore/clientbench && go test -run '^$' -bench . -benchtime 3x   # uploads
//	cd store/objstore/clientbench && go test -run '^$' -bench Range -benchtime 300x
//
// Binary size: a program that loads the default configuration (aws:
// config.LoadDefaultConfig; minio: credentials.NewEnvAWS) and calls
// HeadBucket, minus the same program with net/http only; modules: the
// dependencies `go version -m` lists in that binary, minus net/http's.
//
// Figures (ranges are over the runs; 2026-11-30, Go 1.26.8, versitygw
// v1.8.0, aws-sdk-go-v2/service/s3 v1.114.10, minio-go/v7 v7.4.1):
//
//	                                   aws-sdk-go-v2          minio-go
//	upload 256 MiB, MB/s (8 / 6 runs)  110-202, median 140    98-149, median 124
//	client CPU per GiB uploaded        1.9-2.4 s              1.8-2.3 s
//	32 KiB range GET, p50 (6 runs)     1.9-3.8 ms, median 2.5 1.6-2.8 ms, median 2.1
//	32 KiB range GET, p99              9-58 ms                11-26 ms
//	client CPU per range GET           0.9-1.1 ms             0.7-0.8 ms
//	allocations per range GET          538, 77 KB             263, 61 KB
//	binary size added, stripped        +4.3 MB (+6.1 MB)      +1.6 MB (+2.1 MB)
//	  (unstripped in parentheses)
//	modules added to the binary        18, all aws-sdk-go-v2  19, of which 15 new
//	                                   and smithy-go          to fmcap
//	checksummed multipart upload       full-object CRC-32C    trailing CRC-32C
//	  to versitygw                     accepted               refused ("did not
//	                                                          match"): measured
//	                                                          without it
//
// Both clients are equal within the noise on throughput (the server and
// the SHA-256 that SigV4 needs over plain HTTP dominate both); minio-go is
// about 0.4 ms faster a range GET and allocates half as much, and is
// 2.7 MB smaller. Neither difference matters next to a network round trip
// to S3 (10-30 ms a GET), and neither moves the query's cost, which is the
// number of GETs (hence ReadRanges's coalescing).
//
// aws-sdk-go-v2 is the client. The figures above do not decide it on
// speed; what decides it is the standard AWS chain the issue requires: the
// SDK itself reads AWS_REGION, AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL,
// profiles in the shared config files (credential_process, SSO, assumed
// roles, web identity for EKS) and the instance role (IMDSv2), exactly as
// the aws CLI does, and it supports full-object CRC-32C checksums for
// multipart uploads. minio-go reads the access key variables, the
// credentials file and the instance role, but neither the region nor the
// endpoint variables, nor SSO or credential_process profiles: fmcap would
// reimplement and maintain that part of the chain. Its modules are all
// aws-sdk-go-v2's own and smithy-go (no third-party code), where minio-go
// brings in a dozen third-party modules (go-humanize, ini, uuid, xid, msgp,
// md5-simd, cpuid, crc64nvme, xxh3, x/crypto, x/net, x/text).
package objstore
