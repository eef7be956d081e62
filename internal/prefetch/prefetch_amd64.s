#include "textflag.h"

// func Lines(p unsafe.Pointer, n uintptr)
// PREFETCHT0 every 64-byte line of p[0:n] (see prefetch_asm.go).
TEXT ·Lines(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), AX
	MOVQ n+8(FP), CX
	ADDQ AX, CX
	ANDQ $-64, AX // from the line holding p: an unaligned p[0:n] may span one more line than n/64
loop:
	CMPQ AX, CX
	JAE  done
	PREFETCHT0 (AX)
	ADDQ $64, AX
	JMP  loop
done:
	RET
