package shmring

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestUnsafeInOneFile holds layout_unsafe.go to what it says: the only file
// of the package that imports unsafe (test files aside).
func TestUnsafeInOneFile(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var users []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range f.Imports {
			if p, _ := strconv.Unquote(im.Path.Value); p == "unsafe" {
				users = append(users, name)
			}
		}
	}
	if len(users) != 1 || users[0] != "layout_unsafe.go" {
		t.Fatalf("files importing unsafe: %v, want [layout_unsafe.go]", users)
	}
}

// TestProducerFencesEveryLossySlot: the producer's half of the overrun
// check's ordering (fenceLossy) must load the delivered word of every lossy
// slot, wherever it is declared, and of no lossless one; a slot left out
// would validate its reads with nothing ordering them (MEMORY ORDERING).
func TestProducerFencesEveryLossySlot(t *testing.T) {
	r, _ := newRing(t, Config{DataSize: 1 << 16, MaxCaplen: 512, Consumers: []ConsumerSpec{
		{"ix1", Lossy}, {"w", Lossless}, {"ix2", Lossy}, {"w2", Lossless}}})
	p, err := r.NewProducer(Live)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	want := []*atomicU64{r.slot(0).field(slotDeliv), r.slot(2).field(slotDeliv)}
	if len(p.lossyDel) != len(want) {
		t.Fatalf("fenceLossy loads %d words, want %d", len(p.lossyDel), len(want))
	}
	for i := range want {
		if p.lossyDel[i] != want[i] {
			t.Errorf("fenceLossy word %d is not lossy slot %d's delivered", i, 2*i)
		}
	}
}
