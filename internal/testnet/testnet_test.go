package testnet

import (
	"strings"
	"testing"
)

func TestPrefix(t *testing.T) {
	a, b := Prefix("fm"), Prefix("fm")
	if a == b || !strings.HasPrefix(a, "fm") || len(a+"a0") > 15 {
		t.Fatalf("got %q and %q: want two different names of at most 13 characters", a, b)
	}
}
