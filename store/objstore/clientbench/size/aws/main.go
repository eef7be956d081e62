// Command aws loads the AWS default configuration and calls HeadBucket
// with aws-sdk-go-v2: its size minus base's is what the client adds.
package main

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func main() {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		panic(err)
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	_, err = c.HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String("b")})
	fmt.Println(err)
}
