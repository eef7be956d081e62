// Command ringbench measures the capture ring across processes: one producer
// (this process) and two consumers (this binary re-executed), and, as the
// peer measured in the same run, the same record stream carried to two
// consumer processes through kernel pipes.
//
//	ringbench -size 64 -n 20000000 -ring /dev/hugepages/ringbench
//
// Every consumer reads each record's header and sums the first 64 bytes of
// its payload (what a packet parser touches), so neither side can skip the
// data. The producer waits for room (Blocking mode) so every record counts.
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"time"

	"github.com/fmcap/fmcap/shmring"
)

func main() {
	if role := os.Getenv("RINGBENCH_ROLE"); role != "" {
		consume(role)
		return
	}
	size := flag.Int("size", 64, "packet bytes")
	n := flag.Int("n", 20_000_000, "records")
	ring := flag.String("ring", "/dev/shm/ringbench", "ring file (hugetlbfs for the real setup)")
	all := flag.Bool("all", false, "consumers read every payload byte, not only the first 64")
	flag.Parse()
	if *all {
		os.Setenv("RINGBENCH_ALL", "1")
	}
	ringRate := runRing(*ring, *size, *n)
	pipeRate := runPipe(*size, *n)
	fmt.Printf("touch-all %-5v size %5d B  ring %6.2f M rec/s %6.2f GB/s   pipes %6.2f M rec/s %6.2f GB/s   ratio %.1fx\n",
		*all, *size, ringRate/1e6, ringRate*float64(*size)/1e9, pipeRate/1e6, pipeRate*float64(*size)/1e9, ringRate/pipeRate)
}

func spawn(env ...string) (*exec.Cmd, io.ReadCloser) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	return cmd, out
}

func runRing(path string, size, n int) float64 {
	os.Remove(path)
	data := uint64(256 << 20)
	if err := shmring.Create(path, shmring.Config{DataSize: data, MaxCaplen: 65535,
		Consumers: []shmring.ConsumerSpec{{Name: "a", Mode: shmring.Lossless}, {Name: "b", Mode: shmring.Lossless}}}); err != nil {
		panic(err)
	}
	defer os.Remove(path)
	r, err := shmring.Open(path)
	if err != nil {
		panic(err)
	}
	defer r.Close()
	var cmds []*exec.Cmd
	var outs []io.ReadCloser
	for _, name := range []string{"a", "b"} {
		c, o := spawn("RINGBENCH_ROLE=ring", "RINGBENCH_RING="+path, "RINGBENCH_NAME="+name, "RINGBENCH_N="+strconv.Itoa(n))
		cmds, outs = append(cmds, c), append(outs, o)
	}
	time.Sleep(100 * time.Millisecond) // let the consumers attach
	p, err := r.NewProducer(shmring.Blocking)
	if err != nil {
		panic(err)
	}
	pkt := make([]byte, size)
	for i := range pkt {
		pkt[i] = byte(i)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		p.Write(int64(i), uint32(size), 0, shmring.DirIngress, 0, pkt)
		if i&63 == 63 {
			p.Publish()
		}
	}
	p.Close()
	return finish(start, n, cmds, outs)
}

func finish(start time.Time, n int, cmds []*exec.Cmd, outs []io.ReadCloser) float64 {
	for i, c := range cmds {
		b, _ := io.ReadAll(outs[i])
		if err := c.Wait(); err != nil {
			panic(err)
		}
		if got, _ := strconv.Atoi(string(b)); got != n {
			panic(fmt.Sprintf("consumer %d got %d records, want %d", i, got, n))
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// runPipe sends the same records (40-byte header + payload, 8-aligned) down
// one pipe per consumer, in 1 MiB writes.
func runPipe(size, n int) float64 {
	rl := (40 + size + 7) &^ 7
	var cmds []*exec.Cmd
	var outs []io.ReadCloser
	var ins []io.WriteCloser
	for i := 0; i < 2; i++ {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "RINGBENCH_ROLE=pipe", "RINGBENCH_SIZE="+strconv.Itoa(size), "RINGBENCH_N="+strconv.Itoa(n))
		cmd.Stderr = os.Stderr
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			panic(err)
		}
		cmds, outs, ins = append(cmds, cmd), append(outs, out), append(ins, in)
	}
	buf := make([]byte, 0, 1<<20)
	pkt := make([]byte, rl)
	start := time.Now()
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(pkt, uint32(rl))
		binary.LittleEndian.PutUint64(pkt[8:], uint64(i))
		buf = append(buf, pkt...)
		if len(buf)+rl > cap(buf) || i == n-1 {
			for _, w := range ins {
				w.Write(buf)
			}
			buf = buf[:0]
		}
	}
	for _, w := range ins {
		w.Close()
	}
	return finish(start, n, cmds, outs)
}

var touchAll = os.Getenv("RINGBENCH_ALL") == "1"

// touch reads the payload as a consumer would: the first 64 bytes (a parser),
// or all of it (-all, like the writer's copy), 8 bytes at a time.
func touch(b []byte) (s uint64) {
	if !touchAll && len(b) > 64 {
		b = b[:64]
	}
	for len(b) >= 8 {
		s += binary.LittleEndian.Uint64(b)
		b = b[8:]
	}
	for _, c := range b {
		s += uint64(c)
	}
	return s
}

func consume(role string) {
	n, _ := strconv.Atoi(os.Getenv("RINGBENCH_N"))
	got := 0
	var sum uint64
	if role == "pipe" {
		size, _ := strconv.Atoi(os.Getenv("RINGBENCH_SIZE"))
		rl := (40 + size + 7) &^ 7
		br := bufio.NewReaderSize(os.Stdin, 1<<20)
		rec := make([]byte, rl)
		for {
			if _, err := io.ReadFull(br, rec); err != nil {
				break
			}
			sum += binary.LittleEndian.Uint64(rec[8:]) + touch(rec[40:40+size])
			got++
		}
		fmt.Print(got)
		return
	}
	r, err := shmring.Open(os.Getenv("RINGBENCH_RING"))
	if err != nil {
		panic(err)
	}
	c, err := r.Attach(os.Getenv("RINGBENCH_NAME"))
	if err != nil {
		panic(err)
	}
	idle := 0
	for {
		rec, err := c.Next()
		if err == nil {
			sum += rec.Seq + touch(rec.Data)
			got++
			idle = 0
			if got&1023 == 0 {
				c.Commit()
			}
			continue
		}
		if err == io.EOF {
			break
		}
		if err != shmring.ErrEmpty {
			panic(err)
		}
		c.Commit()
		if idle++; idle < 100 {
			runtime.Gosched()
		} else {
			time.Sleep(5 * time.Microsecond)
		}
	}
	c.Commit()
	_ = sum
	fmt.Print(got)
	if got != n {
		os.Exit(1)
	}
}
