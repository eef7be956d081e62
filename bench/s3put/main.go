// Command s3put uploads files to an S3 server as cheaply as a client can:
// multipart parts of one file read into memory first, several in flight,
// no payload signing (UNSIGNED-PAYLOAD) and no checksums. What it reaches is
// the server's ceiling on this machine, the peer fmupload is measured
// against in bench/tier-pace.sh. (fmupload sends CRC-32C checksums, which
// versitygw checks; given none, versitygw computes a CRC-64/NVME of its
// own, slower, so s3put's requests can cost the server more: tier-pace.sh
// bounds with the cheaper of the two.) Endpoint and credentials: the
// standard AWS variables.
// Output, one line: "s3put: N bytes in S s: R MB/s".
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func main() {
	bucket := flag.String("bucket", "", "bucket")
	prefix := flag.String("prefix", "s3put", "key prefix")
	partSize := flag.Int("part-size", 16<<20, "part size in bytes")
	inflight := flag.Int("inflight", 8, "parts in flight")
	flag.Parse()
	if *bucket == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: s3put -bucket B [-prefix P] FILE...")
		os.Exit(2)
	}
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		fail(err)
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = true
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	}, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
	// The files are read before the clock starts: the server's rate, not
	// the disk's, is measured.
	var files [][]byte
	var total int64
	for _, p := range flag.Args() {
		b, err := os.ReadFile(p)
		if err != nil {
			fail(err)
		}
		files = append(files, b)
		total += int64(len(b))
	}
	sem := make(chan struct{}, *inflight)
	t0 := time.Now()
	for i, b := range files {
		key := aws.String(*prefix + "/" + filepath.Base(flag.Arg(i)))
		up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: key})
		if err != nil {
			fail(err)
		}
		n := (len(b) + *partSize - 1) / *partSize
		parts := make([]types.CompletedPart, n)
		var wg sync.WaitGroup
		for k := 0; k < n; k++ {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				part := b[k**partSize : min(len(b), (k+1)**partSize)]
				out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: bucket, Key: key, UploadId: up.UploadId,
					PartNumber: aws.Int32(int32(k + 1)), Body: bytes.NewReader(part), ContentLength: aws.Int64(int64(len(part)))})
				if err != nil {
					fail(err)
				}
				parts[k] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(k + 1))}
			}()
		}
		wg.Wait()
		if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: bucket, Key: key, UploadId: up.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
			fail(err)
		}
	}
	s := time.Since(t0).Seconds()
	fmt.Printf("s3put: %d bytes in %.2f s: %.0f MB/s\n", total, s, float64(total)/s/1e6)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "s3put:", err)
	os.Exit(1)
}
