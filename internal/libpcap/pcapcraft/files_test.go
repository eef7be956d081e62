package pcapcraft

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/intake from Files")

const dir = "../../../testdata/intake"

// TestTestdataIsCurrent: testdata/intake holds exactly what Files makes
// (go test ./internal/libpcap/pcapcraft -run TestTestdataIsCurrent -update
// rewrites it, README included).
func TestTestdataIsCurrent(t *testing.T) {
	fs := Files()
	if *update {
		var readme strings.Builder
		readme.WriteString(readmeHead)
		for _, f := range fs {
			if err := os.WriteFile(filepath.Join(dir, f.Name), f.Bytes, 0o644); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&readme, "| `%s` | %s |\n", f.Name, f.What)
		}
		if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte(readme.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range fs {
		got, err := os.ReadFile(filepath.Join(dir, f.Name))
		if err != nil {
			t.Fatalf("%v (run with -update)", err)
		}
		if !bytes.Equal(got, f.Bytes) {
			t.Errorf("%s differs from what pcapcraft.Files makes (run with -update)", f.Name)
		}
	}
}

const readmeHead = `# testdata/intake

Crafted capture files: each holds a case that fminject must read as libpcap
(tcpdump) does, or refuse, saying why. None comes from a real capture. They
are written byte by byte by ` + "`internal/libpcap/pcapcraft`" + ` (` + "`files.go`" + `), and
regenerated, this README included, with

    go test ./internal/libpcap/pcapcraft -run TestTestdataIsCurrent -update

(without ` + "`-update`" + ` the test fails when a file differs from what the code
makes). Frames are 02:00:00:00:00:01 > 02:00:00:00:00:02, EtherType 0x88b5
(local experimental), filled with a byte pattern; times start at
1700000000 (2023-11-14 22:13:20 UTC). The tests of ` + "`internal/libpcap`" + ` and
` + "`tools/fminject`" + ` compare what is read from them with ` + "`tcpdump -r FILE -w -`" + `
(libpcap) and, for times, ` + "`tshark -T fields -e frame.time_epoch`" + `; they also
seed the fuzz target of ` + "`internal/libpcap`" + `.

| file | what |
|---|---|
`
