package objstore

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// Range is n bytes of an object from offset Off.
type Range struct{ Off, N int64 }

// ReadRanges reads every range of key and returns their bytes in the order
// given. Ranges less than maxGap bytes apart (or overlapping) are read with
// one GET: on S3 a request costs about as much as tens of KiB of transfer,
// so reading a small gap is cheaper than a second request. Up to
// Config.Concurrency GETs are in flight. The slices returned for merged
// ranges share one buffer.
func (s *Store) ReadRanges(ctx context.Context, key string, ranges []Range, maxGap int64) ([][]byte, error) {
	type span struct {
		off, end int64 // [off, end)
		members  []int // indexes into ranges
	}
	order := make([]int, len(ranges))
	for i, r := range ranges {
		if r.Off < 0 || r.N < 0 {
			return nil, fmt.Errorf("objstore: read %s: bad range %d+%d", s.where(key), r.Off, r.N)
		}
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return ranges[order[a]].Off < ranges[order[b]].Off })
	var spans []span
	for _, i := range order {
		r := ranges[i]
		if r.N == 0 {
			continue
		}
		if n := len(spans); n > 0 && r.Off <= spans[n-1].end+maxGap {
			spans[n-1].end = max(spans[n-1].end, r.Off+r.N)
			spans[n-1].members = append(spans[n-1].members, i)
			continue
		}
		spans = append(spans, span{off: r.Off, end: r.Off + r.N, members: []int{i}})
	}

	out := make([][]byte, len(ranges))
	for i := range out {
		out[i] = []byte{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
		sem      = make(chan struct{}, s.cfg.Concurrency)
	)
	for _, sp := range spans {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			buf, err := s.GetRange(ctx, key, sp.off, sp.end-sp.off)
			if err != nil {
				once.Do(func() { firstErr = err; cancel() })
				return
			}
			for _, i := range sp.members {
				r := ranges[i]
				out[i] = buf[r.Off-sp.off : r.Off-sp.off+r.N : r.Off-sp.off+r.N]
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("objstore: read %s: %w", s.where(key), err)
	}
	return out, nil
}
