package fmcapd

import (
	"fmt"
	"testing"
	"time"
)

// TestOutcomes: an outcome is found by its client and id only; the oldest
// go beyond maxOutcomes, and any older than outcomeTTL.
func TestOutcomes(t *testing.T) {
	var o outcomes
	o.put(outcomeKey{"cert:a", "id-000001"}, outcome{Error: "answer cut at max_bytes (10)", Bytes: 10, at: time.Now()})
	if v, ok := o.get(outcomeKey{"cert:a", "id-000001"}); !ok || v.Error != "answer cut at max_bytes (10)" || v.Complete || v.Bytes != 10 {
		t.Fatalf("got %+v %v", v, ok)
	}
	if _, ok := o.get(outcomeKey{"cert:b", "id-000001"}); ok {
		t.Fatal("another client's outcome found")
	}
	for i := 0; i < maxOutcomes; i++ {
		o.put(outcomeKey{"cert:a", fmt.Sprintf("id-%06d", i+2)}, outcome{Complete: true, at: time.Now()})
	}
	if _, ok := o.get(outcomeKey{"cert:a", "id-000001"}); ok || len(o.m) != maxOutcomes || len(o.order) != maxOutcomes {
		t.Fatalf("the oldest kept beyond %d: %d kept", maxOutcomes, len(o.m))
	}
	o.put(outcomeKey{"cert:a", "id-old-one"}, outcome{at: time.Now().Add(-2 * outcomeTTL)})
	if _, ok := o.get(outcomeKey{"cert:a", "id-old-one"}); ok {
		t.Fatal("an outcome older than outcomeTTL found")
	}
	for _, c := range []struct {
		id string
		ok bool
	}{{"0123456789abcdef", true}, {"a-b_c-d_", true}, {"short", false}, {"with space!", false}, {"../../etc", false}, {string(make([]byte, 65)), false}} {
		if validID(c.id) != c.ok {
			t.Errorf("validID(%q) = %v", c.id, !c.ok)
		}
	}
}
