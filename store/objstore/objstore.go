package objstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// Store is one bucket and prefix on an S3-compatible server. Its methods
// are safe for concurrent use. Keys are relative to Config.Prefix.
type Store struct {
	cfg    Config
	region string
	client *s3.Client
	creds  credInfo
	log    *slog.Logger
	// endpoint is the custom endpoint in force ("" for AWS's own), and
	// endpointSetting the setting it came from, for error messages.
	endpoint, endpointSetting string
	// bufs holds PartSize buffers between Puts (*[]byte): a chunk a Put,
	// each allocated afresh, cost the uploader more in zeroing pages and
	// collecting garbage than its checksums.
	bufs sync.Pool
}

// credInfo is what error messages may say about the credentials (the key
// hint and where they came from) and what they must never say (kept only
// to redact it).
type credInfo struct {
	AccessKeyID, Source           string
	SecretAccessKey, SessionToken string
}

// Info describes a stored object.
type Info struct {
	Key     string // relative to Config.Prefix
	Size    int64
	ETag    string
	ModTime time.Time
	// CRC32C is the whole object's CRC-32C, base64 of its 4 big-endian
	// bytes as S3 gives it; empty when the object was stored without one
	// (by another tool) or the listing does not carry it.
	CRC32C string
}

// HTTPClient lets a test wrap the transport (to make a fault); nil is the
// SDK's default client.
type HTTPClient = interface {
	Do(*http.Request) (*http.Response, error)
}

// New builds a Store from cfg and the standard AWS chain. It retrieves the
// credentials (from the environment, the shared files, or the instance
// role) but sends nothing to the bucket: Check does.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Store, error) {
	return newStore(ctx, cfg, log, nil)
}

func newStore(ctx context.Context, cfg Config, log *slog.Logger, hc HTTPClient) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []func(*config.LoadOptions) error{
		// Retries of single requests: the SDK's standard retryer without
		// its retry quota, which after a short outage would refuse retries
		// for a while (Put retries parts itself, for Config.RetryFor).
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.RateLimiter = ratelimit.None
				o.MaxAttempts = 3
				o.MaxBackoff = 2 * time.Second
			})
		}),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		// The shared files are parsed here: their errors name the file.
		return nil, fmt.Errorf("objstore: load AWS configuration: %w", err)
	}
	endpoint, _ := cfg.endpoint()
	if awsCfg.Region == "" {
		if endpoint == "" {
			return nil, fmt.Errorf("objstore: no region: set AWS_REGION, region in the profile, or region in %s", cfg.source())
		}
		awsCfg.Region = "us-east-1"
	}
	s := &Store{cfg: cfg, region: awsCfg.Region, log: log}
	s.endpoint, s.endpointSetting = cfg.endpoint()
	s.client = s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		if s.endpoint == "" && o.BaseEndpoint != nil {
			// Set by the SDK from endpoint_url in the shared config.
			s.endpoint, s.endpointSetting = *o.BaseEndpoint, "endpoint_url in the shared AWS config"
		}
		// A custom endpoint (a MinIO, Ceph or versitygw server) rarely has
		// the wildcard DNS that virtual-host addressing needs.
		o.UsePathStyle = cfg.PathStyle || s.endpoint != ""
		// Put computes and sends its own CRC-32C; other requests need none.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		// Range reads have no whole-object checksum to validate; without
		// this the SDK would print a line per read to stderr saying so.
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.DisableLogOutputChecksumValidationSkipped = true
		if hc != nil {
			o.HTTPClient = hc
		}
	})
	creds, err := awsCfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, s.classify("retrieve credentials", "", fmt.Errorf("retrieve credentials: %w", err))
	}
	s.creds = credInfo{AccessKeyID: creds.AccessKeyID, Source: credSource(cfg, creds.Source),
		SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken}
	log.Info("object store", "config", cfg, "region", s.region, "endpoint", endpointOrAWS(s.endpoint),
		"credentials", s.creds.Source, "access_key", keyHint(s.creds.AccessKeyID))
	return s, nil
}

func credSource(cfg Config, sdk string) string {
	switch {
	case cfg.AccessKeyID != "":
		return "access_key_id in " + cfg.source()
	case sdk == credentials.StaticCredentialsName, strings.HasPrefix(sdk, "EnvConfigCredentials"):
		return "the environment (AWS_ACCESS_KEY_ID)"
	case sdk == "":
		return "the AWS credential chain"
	}
	return sdk // e.g. "SharedConfigCredentials: /root/.aws/credentials", "EC2RoleProvider"
}

func endpointOrAWS(e string) string {
	if e == "" {
		return "AWS"
	}
	return e
}

func (s *Store) full(key string) string { return s.cfg.Prefix + key }

// payload is the option of the two requests that carry an object's bytes
// (PutObject, UploadPart): unless signed (Config.SignPayload; by default
// over plain HTTP), they go as UNSIGNED-PAYLOAD, their integrity resting
// on the CRC-32C header that the signature covers and the server checks
// (Config.SignPayload says why).
// The other requests' bodies are small XML and stay signed.
func (s *Store) payload(o *s3.Options) {
	if !s.cfg.signPayload(s.endpoint) {
		o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
	}
}

// Check lists one key under the prefix: a wrong endpoint, refused
// credentials, a missing bucket or a skewed clock show here, before any
// upload. (Not HeadBucket: an answer to HEAD has no body, so the server
// cannot say which of these it is.)
func (s *Store) Check(ctx context.Context) error {
	_, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.cfg.Bucket),
		Prefix:  aws.String(s.cfg.Prefix),
		MaxKeys: aws.Int32(1),
	})
	return s.classify("ListObjectsV2", "", err)
}

// crcTable is CRC-32C (Castagnoli), computed with SSE4.2/ARMv8 instructions
// by hash/crc32: S3's fastest checksum, and the only one besides CRC-32 and
// CRC-64/NVME that S3 combines into a whole-object (FULL_OBJECT) checksum
// for multipart uploads, so single-part and multipart objects carry the
// same kind of checksum and it can be compared with a local file's.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// crcCombine returns the CRC-32C of A‖B from CRC-32C(A), CRC-32C(B) and
// B's length, without B's bytes (zlib's crc32_combine: appending n zero
// bits to A's CRC is a linear map over GF(2), applied by repeated
// squaring of its 32×32 matrix). putMultipart sums each part once and
// combines the parts' sums into the whole object's, instead of a second
// pass over every byte.
func crcCombine(crc1, crc2 uint32, len2 int64) uint32 {
	if len2 <= 0 {
		return crc1
	}
	var even, odd [32]uint32
	odd[0] = 0x82f63b78 // Castagnoli, reversed: the operator for one zero bit
	row := uint32(1)
	for n := 1; n < 32; n++ {
		odd[n] = row
		row <<= 1
	}
	square := func(sq, m *[32]uint32) {
		for n := range sq {
			sq[n] = gf2Times(m, m[n])
		}
	}
	square(&even, &odd) // two zero bits
	square(&odd, &even) // four
	// Then eight zero bits (a zero byte), sixteen, ...: len2's bits.
	for {
		square(&even, &odd)
		if len2&1 != 0 {
			crc1 = gf2Times(&even, crc1)
		}
		if len2 >>= 1; len2 == 0 {
			break
		}
		square(&odd, &even)
		if len2&1 != 0 {
			crc1 = gf2Times(&odd, crc1)
		}
		if len2 >>= 1; len2 == 0 {
			break
		}
	}
	return crc1 ^ crc2
}

func gf2Times(m *[32]uint32, v uint32) uint32 {
	var sum uint32
	for i := 0; v != 0; i, v = i+1, v>>1 {
		if v&1 != 0 {
			sum ^= m[i]
		}
	}
	return sum
}

func crcString(c uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], c)
	return base64.StdEncoding.EncodeToString(b[:])
}

// Put stores exactly size bytes read from r under key. Objects up to
// PartSize go in one PUT; larger ones in a multipart upload of
// Concurrency parts in flight, each part's CRC-32C checked by the server as
// it arrives and the whole object's CRC-32C checked by the server when the
// parts are assembled (FULL_OBJECT). The object becomes visible (in List,
// Stat, GetRange) only once complete: a failed Put aborts its upload, and
// an upload left behind by a crash is invisible to List and removed by
// AbortIncomplete.
//
// Parts and the completion are retried for Config.RetryFor after network
// errors and 5xx answers, so a server restart in the middle does not lose
// the upload. r is read once, in order.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (Info, error) {
	if size < 0 {
		return Info{}, fmt.Errorf("objstore: put %s: negative size %d", s.where(key), size)
	}
	if size <= s.cfg.PartSize {
		return s.putSingle(ctx, key, r, size)
	}
	return s.putMultipart(ctx, key, r, size)
}

// getBuf returns a buffer of n bytes, from the pool when n ≤ PartSize.
func (s *Store) getBuf(n int64) []byte {
	if n <= s.cfg.PartSize {
		if b, ok := s.bufs.Get().(*[]byte); ok {
			return (*b)[:n]
		}
		return make([]byte, n, s.cfg.PartSize)
	}
	return make([]byte, n)
}

// putBuf gives a buffer from getBuf back; the SDK no longer reads it once
// its request returned (smithy-go's body wrapper refuses reads after
// Close, which the transport may call late).
func (s *Store) putBuf(b []byte) {
	if int64(cap(b)) == s.cfg.PartSize {
		s.bufs.Put(&b)
	}
}

func (s *Store) putSingle(ctx context.Context, key string, r io.Reader, size int64) (Info, error) {
	buf := s.getBuf(size)
	defer s.putBuf(buf)
	if _, err := io.ReadFull(r, buf); err != nil {
		return Info{}, fmt.Errorf("objstore: put %s: read %d bytes: %w", s.where(key), size, err)
	}
	if err := expectEOF(r); err != nil {
		return Info{}, fmt.Errorf("objstore: put %s: %w", s.where(key), err)
	}
	sum := crcString(crc32.Checksum(buf, crcTable))
	var out *s3.PutObjectOutput
	err := s.retry(ctx, func() error {
		var err error
		out, err = s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:         aws.String(s.cfg.Bucket),
			Key:            aws.String(s.full(key)),
			Body:           bytes.NewReader(buf),
			ContentLength:  aws.Int64(size),
			ChecksumCRC32C: aws.String(sum),
		}, s.payload)
		return err
	})
	if err != nil {
		return Info{}, s.classify("PutObject", key, err)
	}
	if got := aws.ToString(out.ChecksumCRC32C); got != "" && got != sum {
		return Info{}, fmt.Errorf("objstore: put %s: %w: server has CRC-32C %s, sent %s", s.where(key), ErrChecksum, got, sum)
	}
	return Info{Key: key, Size: size, ETag: aws.ToString(out.ETag), CRC32C: sum}, nil
}

func (s *Store) putMultipart(ctx context.Context, key string, r io.Reader, size int64) (info Info, err error) {
	partSize := s.cfg.PartSize
	if (size+partSize-1)/partSize > maxParts {
		// S3 takes at most 10 000 parts: larger parts, whole MiBs.
		partSize = ((size+maxParts-1)/maxParts + 1<<20 - 1) &^ (1<<20 - 1)
	}
	nparts := int((size + partSize - 1) / partSize)
	var uploadID string
	err = s.retry(ctx, func() error {
		out, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket:            aws.String(s.cfg.Bucket),
			Key:               aws.String(s.full(key)),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
			ChecksumType:      types.ChecksumTypeFullObject,
		})
		if err == nil {
			uploadID = aws.ToString(out.UploadId)
		}
		return err
	})
	if err != nil {
		return Info{}, s.classify("CreateMultipartUpload", key, err)
	}
	defer func() {
		if err == nil {
			return
		}
		// Nothing half-uploaded stays behind: abort, even when ctx is gone.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, aerr := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.cfg.Bucket), Key: aws.String(s.full(key)), UploadId: aws.String(uploadID),
		}); aerr != nil {
			s.log.Warn("abort multipart upload (AbortIncomplete will remove it)", "key", s.full(key),
				"err", s.classify("AbortMultipartUpload", key, aerr))
		}
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parts := make([]types.CompletedPart, nparts)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(e error) {
		errOnce.Do(func() { firstErr = e; cancel() })
	}
	// Concurrency parts upload while the next one is read: Concurrency+1
	// buffers, reused, and Concurrency uploads at most.
	free := make(chan []byte, s.cfg.Concurrency+1)
	for i := 0; i < cap(free); i++ {
		free <- nil
	}
	inFlight := make(chan struct{}, s.cfg.Concurrency)
	whole := uint32(0)
parts:
	for i := 0; i < nparts; i++ {
		n := min(partSize, size-int64(i)*partSize)
		var buf []byte
		select {
		case buf = <-free:
		case <-ctx.Done():
			break parts
		}
		if buf == nil {
			buf = s.getBuf(partSize)
		}
		buf = buf[:n]
		if _, rerr := io.ReadFull(r, buf); rerr != nil {
			fail(fmt.Errorf("objstore: put %s: read part %d of %d (%d bytes at %d): %w",
				s.where(key), i+1, nparts, n, int64(i)*partSize, rerr))
			break
		}
		partCRC := crc32.Checksum(buf, crcTable)
		whole = crcCombine(whole, partCRC, n)
		partSum := crcString(partCRC)
		num := int32(i + 1)
		select {
		case inFlight <- struct{}{}:
		case <-ctx.Done():
			break parts
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inFlight; free <- buf }()
			var etag string
			err := s.retry(ctx, func() error {
				out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
					Bucket:         aws.String(s.cfg.Bucket),
					Key:            aws.String(s.full(key)),
					UploadId:       aws.String(uploadID),
					PartNumber:     aws.Int32(num),
					Body:           bytes.NewReader(buf),
					ContentLength:  aws.Int64(int64(len(buf))),
					ChecksumCRC32C: aws.String(partSum),
				}, s.payload)
				if err == nil {
					etag = aws.ToString(out.ETag)
				}
				return err
			})
			if err != nil {
				fail(s.classify(fmt.Sprintf("UploadPart %d of %d", num, nparts), key, err))
				return
			}
			parts[num-1] = types.CompletedPart{ETag: aws.String(etag), PartNumber: aws.Int32(num), ChecksumCRC32C: aws.String(partSum)}
		}()
	}
	wg.Wait()
	for len(free) > 0 { // every upload is done: all buffers are back
		if buf := <-free; buf != nil {
			s.putBuf(buf)
		}
	}
	if firstErr != nil {
		return Info{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("objstore: put %s: %w", s.where(key), err)
	}
	if err := expectEOF(r); err != nil {
		return Info{}, fmt.Errorf("objstore: put %s: %w", s.where(key), err)
	}

	sum := crcString(whole)
	var out *s3.CompleteMultipartUploadOutput
	retried := false
	err = s.retry(ctx, func() error {
		var err error
		out, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          aws.String(s.cfg.Bucket),
			Key:             aws.String(s.full(key)),
			UploadId:        aws.String(uploadID),
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
			ChecksumCRC32C:  aws.String(sum),
			ChecksumType:    types.ChecksumTypeFullObject,
			MpuObjectSize:   aws.Int64(size),
		})
		if err != nil {
			retried = true
		}
		return err
	})
	if err != nil && retried && apiCode(err) == "NoSuchUpload" {
		// A completion whose answer was lost (the server went down after
		// assembling the object) is retried and finds no upload: the
		// object is there if its size and checksum are ours.
		if st, serr := s.Stat(ctx, key); serr == nil && st.Size == size && st.CRC32C == sum {
			return st, nil
		}
	}
	if err != nil {
		return Info{}, s.classify("CompleteMultipartUpload", key, err)
	}
	got := aws.ToString(out.ChecksumCRC32C)
	if got == "" {
		st, err := s.Stat(ctx, key)
		if err != nil {
			return Info{}, err
		}
		got = st.CRC32C
	}
	if got != sum {
		return Info{}, fmt.Errorf("objstore: put %s: %w: server has CRC-32C %q, the data read has %s", s.where(key), ErrChecksum, got, sum)
	}
	return Info{Key: key, Size: size, ETag: aws.ToString(out.ETag), CRC32C: sum}, nil
}

// expectEOF fails when r has more than the size it was said to have: a
// caller's mistake that would otherwise store a truncated object silently.
func expectEOF(r io.Reader) error {
	var b [1]byte
	n, err := io.ReadFull(r, b[:])
	if n > 0 {
		return errors.New("the reader has more bytes than the size given")
	}
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return fmt.Errorf("read past the end: %w", err)
	}
	return nil
}

func apiCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

// retry runs op until it succeeds, fails in a way a retry cannot mend, or
// keeps failing for Config.RetryFor. Only idempotent requests go through
// it (a part, a whole PUT, a completion).
func (s *Store) retry(ctx context.Context, op func() error) error {
	var first time.Time
	delay := 100 * time.Millisecond
	for {
		err := op()
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
		if first.IsZero() {
			first = time.Now()
		}
		if time.Since(first) > s.cfg.RetryFor {
			return err
		}
		s.log.Debug("objstore: retrying", "err", s.redact(err), "after", delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return err
		}
		delay = min(2*delay, 2*time.Second)
	}
}

func retryable(err error) bool {
	if isNetError(err) {
		return true
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return true
	}
	switch apiCode(err) {
	case "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout":
		return true
	}
	// The SDK gives up with "exceeded maximum number of attempts" wrapping
	// the last error; a broken connection mid-body is an io error.
	return errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "connection reset") ||
		strings.Contains(err.Error(), "broken pipe") || strings.Contains(err.Error(), "EOF")
}

// GetRange reads n bytes of key from offset off with one ranged GET. It
// returns exactly n bytes or an error: reading past the end of the object
// is ErrShort.
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("objstore: get %s: bad range %d+%d", s.where(key), off, n)
	}
	if n == 0 {
		return []byte{}, nil
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(s.full(key)),
		Range:  aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1)),
	})
	if err != nil {
		if apiCode(err) == "InvalidRange" {
			return nil, fmt.Errorf("objstore: get %s bytes %d-%d: %w (offset at or past the end)", s.where(key), off, off+n-1, ErrShort)
		}
		return nil, s.classify("GetObject", key, err)
	}
	defer out.Body.Close()
	buf := make([]byte, n)
	got, err := io.ReadFull(out.Body, buf)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return nil, fmt.Errorf("objstore: get %s bytes %d-%d: %w: got %d bytes", s.where(key), off, off+n-1, ErrShort, got)
	}
	if err != nil {
		return nil, s.classify("GetObject", key, err)
	}
	return buf, nil
}

// Stat returns what the server knows of key (ErrNotFound when absent).
// An answer to HEAD has no body, so a missing bucket is ErrNotFound here
// too and refused credentials are a bare 403 (ErrCredentials even when the
// cause is the clock): Check tells these apart.
func (s *Store) Stat(ctx context.Context, key string) (Info, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket:       aws.String(s.cfg.Bucket),
		Key:          aws.String(s.full(key)),
		ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return Info{}, s.classify("HeadObject", key, err)
	}
	return Info{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag),
		ModTime: aws.ToTime(out.LastModified), CRC32C: aws.ToString(out.ChecksumCRC32C)}, nil
}

// List returns the complete objects whose key starts with prefix, in key
// order. Multipart uploads in progress or abandoned are not objects in S3
// and are never listed.
func (s *Store) List(ctx context.Context, prefix string) ([]Info, error) {
	var infos []Info
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.cfg.Bucket),
		Prefix: aws.String(s.full(prefix)),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.classify("ListObjectsV2", prefix, err)
		}
		for _, o := range page.Contents {
			infos = append(infos, Info{
				Key:     strings.TrimPrefix(aws.ToString(o.Key), s.cfg.Prefix),
				Size:    aws.ToInt64(o.Size),
				ETag:    aws.ToString(o.ETag),
				ModTime: aws.ToTime(o.LastModified),
			})
		}
	}
	return infos, nil
}

// Delete removes key. Removing an absent key is not an error (S3's rule).
func (s *Store) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(s.full(key)),
	})
	return s.classify("DeleteObject", key, err)
}

// AbortIncomplete aborts the multipart uploads under prefix started more
// than olderThan ago, and says how many. The parts of an upload a crashed
// writer left behind are billed storage that no listing shows. olderThan
// spares uploads that another process may still be completing (0 aborts
// all: only when no Put is running under prefix).
func (s *Store) AbortIncomplete(ctx context.Context, prefix string, olderThan time.Duration) (int, error) {
	n := 0
	err := s.eachUpload(ctx, prefix, func(u types.MultipartUpload) error {
		if olderThan > 0 && time.Since(aws.ToTime(u.Initiated)) < olderThan {
			return nil
		}
		_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.cfg.Bucket), Key: u.Key, UploadId: u.UploadId,
		})
		if err != nil && apiCode(err) != "NoSuchUpload" {
			return s.classify("AbortMultipartUpload", strings.TrimPrefix(aws.ToString(u.Key), s.cfg.Prefix), err)
		}
		n++
		return nil
	})
	return n, err
}

// Incomplete lists the IDs of the multipart uploads under prefix not yet
// completed or aborted (in progress, or left by a crash).
func (s *Store) Incomplete(ctx context.Context, prefix string) ([]string, error) {
	var n []string
	err := s.eachUpload(ctx, prefix, func(u types.MultipartUpload) error {
		n = append(n, aws.ToString(u.UploadId))
		return nil
	})
	return n, err
}

// eachUpload calls f for each multipart upload under prefix not yet
// completed or aborted, page after page of the listing; it stops at f's
// first error.
func (s *Store) eachUpload(ctx context.Context, prefix string, f func(types.MultipartUpload) error) error {
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(s.cfg.Bucket), Prefix: aws.String(s.full(prefix))}
	for {
		out, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return s.classify("ListMultipartUploads", prefix, err)
		}
		for _, u := range out.Uploads {
			if err := f(u); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}
