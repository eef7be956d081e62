// Command base is the baseline of the binary size comparison: net/http
// alone. The figures are in objstore's package doc; to measure again:
//
//	cd store/objstore/clientbench
//	for p in base aws minio; do go build -trimpath -o /tmp/size-$p ./size/$p; go build -trimpath -ldflags='-s -w' -o /tmp/size-$p-s ./size/$p; done
//	ls -l /tmp/size-*; for p in base aws minio; do go version -m /tmp/size-$p | grep -c '^\s*dep'; done
package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	resp, err := http.Head(os.Args[1])
	fmt.Println(resp, err)
}
