#include "textflag.h"

// func Lines(p unsafe.Pointer, n uintptr)
// PRFM PLDL1KEEP every 64-byte line of p[0:n] (see prefetch_asm.go). 64
// bytes is the line size of the Neoverse cores Graviton uses; on a core
// with longer lines a few prefetches hit the same line, which costs little.
TEXT ·Lines(SB), NOSPLIT, $0-16
	MOVD p+0(FP), R0
	MOVD n+8(FP), R1
	ADD  R0, R1, R1
	AND  $~63, R0 // from the line holding p: an unaligned p[0:n] may span one more line than n/64
loop:
	CMP  R1, R0
	BHS  done
	PRFM (R0), PLDL1KEEP
	ADD  $64, R0
	B    loop
done:
	RET
