// Command minio calls BucketExists with minio-go and credentials from the
// environment: its size minus base's is what the client adds.
package main

import (
	"context"
	"fmt"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func main() {
	c, err := minio.New("127.0.0.1:1", &minio.Options{Creds: credentials.NewEnvAWS()})
	if err != nil {
		panic(err)
	}
	ok, err := c.BucketExists(context.Background(), "b")
	fmt.Println(ok, err)
}
