// Package clientbench measures the two candidate S3 clients against a real
// versitygw on loopback: aws-sdk-go-v2/service/s3 (through objstore.Store,
// the code fmcap ships) and minio-go/v7. It is a module of its own so that
// the client fmcap did not choose stays out of fmcap's go.mod. The figures
// and the choice are in objstore's package doc.
//
//	cd store/objstore/clientbench && go test -run '^$' -bench . -benchtime 3x
package clientbench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/fmcap/fmcap/internal/s3test"
	"github.com/fmcap/fmcap/store/objstore"
)

const (
	uploadSize = 256 << 20
	partSize   = 16 << 20
	threads    = 4
	rangeSize  = 32 << 10
	rangeObj   = 64 << 20
)

type client interface {
	put(ctx context.Context, key string, data []byte) error
	getRange(ctx context.Context, key string, off, n int64) ([]byte, error)
}

type awsClient struct{ s *objstore.Store }

func (c awsClient) put(ctx context.Context, key string, data []byte) error {
	_, err := c.s.Put(ctx, key, bytes.NewReader(data), int64(len(data)))
	return err
}

func (c awsClient) getRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	return c.s.GetRange(ctx, key, off, n)
}

type minioClient struct {
	c      *minio.Client
	bucket string
}

func (c minioClient) put(ctx context.Context, key string, data []byte) error {
	_, err := c.c.PutObject(ctx, c.bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{
		PartSize: partSize, NumThreads: threads,
		// No Checksum and no TrailingHeaders: with them (trailing CRC-32C),
		// versitygw v1.8.0 refuses minio-go v7.4.1's multipart completion
		// ("The CRC32C you specified did not match the calculated
		// checksum"), where aws-sdk-go-v2's full-object CRC-32C is
		// accepted. minio-go's default still sends a CRC-32C per part.
	})
	return err
}

func (c minioClient) getRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	var o minio.GetObjectOptions
	if err := o.SetRange(off, off+n-1); err != nil {
		return nil, err
	}
	obj, err := c.c.GetObject(ctx, c.bucket, key, o)
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	buf := make([]byte, n)
	_, err = io.ReadFull(obj, buf)
	return buf, err
}

func clients(b *testing.B, srv *s3test.Server) map[string]client {
	b.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	s, err := objstore.New(context.Background(), objstore.Config{
		Bucket: srv.Bucket, Endpoint: srv.Endpoint, Region: srv.Region,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey,
		PartSize: partSize, Concurrency: threads,
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	u, _ := url.Parse(srv.Endpoint)
	mc, err := minio.New(u.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""),
		Region: srv.Region, BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		b.Fatal(err)
	}
	return map[string]client{"aws-sdk-go-v2": awsClient{s}, "minio-go": minioClient{mc, srv.Bucket}}
}

// cpuTime is this process's CPU time (user and system): the client's cost
// alone, since the server is another process, and less disturbed by the
// other load on a shared machine than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func data(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func BenchmarkUpload256MiB(b *testing.B) {
	srv := s3test.Start(b)
	payload := data(uploadSize)
	for _, name := range []string{"aws-sdk-go-v2", "minio-go"} {
		c := clients(b, srv)[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(uploadSize)
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				if err := c.put(context.Background(), fmt.Sprintf("up/%s/%d", name, i), payload); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N)*float64(1<<30)/uploadSize, "client-cpu-s/GiB")
		})
	}
}

func BenchmarkRangeGet32KiB(b *testing.B) {
	srv := s3test.Start(b)
	payload := data(rangeObj)
	cs := clients(b, srv)
	if err := cs["aws-sdk-go-v2"].put(context.Background(), "obj", payload); err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"aws-sdk-go-v2", "minio-go"} {
		c := cs[name]
		b.Run(name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(3, 4))
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				off := r.Int64N(rangeObj - rangeSize)
				t0 := time.Now()
				got, err := c.getRange(context.Background(), "obj", off, rangeSize)
				lat = append(lat, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
				if !bytes.Equal(got, payload[off:off+rangeSize]) {
					b.Fatalf("range %d: wrong bytes", off)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "client-cpu-µs/op")
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
