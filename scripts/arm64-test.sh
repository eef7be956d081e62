#!/usr/bin/env bash
# fmcap on arm64 (AWS Graviton), from an amd64 host:
#   1. every pure-Go package is built (and vetted, tests included) for
#      GOARCH=arm64: those that need no cgo, themselves or through a
#      dependency outside the standard library;
#   2. the test binaries of TEST_PKGS below are built for arm64 and run
#      under qemu-user, cross-process tests included: a test that re-executes
#      its own binary runs the child under qemu too (FMCAP_TEST_EXEC_WRAPPER;
#      the kernel cannot exec an arm64 binary itself without binfmt_misc,
#      which this script does not touch).
# qemu runs arm64 code on this host's memory model (x86 TSO), so step 2
# shows that the code builds and behaves on arm64, not that its memory
# ordering holds on arm64 hardware: that rests on the argument in
# shmring/doc.go (MEMORY ORDERING), which holds on every architecture.
#
# Installs nothing: scripts/deps.sh test brings qemu-user-static (make test
# runs it first). Usage: scripts/arm64-test.sh [package ...] (default
# TEST_PKGS). QEMU_AARCH64 names the emulator if it is not on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

# The packages whose unit tests run as arm64 binaries: the ring (its
# cross-process stress test among them) and the store's formats (the chunk
# and segment round trips; the segment's tests reach no cgo since the
# format moved to ./store/segment and the decoder to ./query).
# ./internal/prefetch has arm64 assembly of its own.
TEST_PKGS=(./shmring ./store/chunk ./store/segment ./internal/prefetch)
[ $# -gt 0 ] && TEST_PKGS=("$@")

GO=${GO:-go}
QEMU=${QEMU_AARCH64:-$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)}
if [ -z "$QEMU" ] || ! [ -x "$(command -v "$QEMU")" ]; then
	echo "arm64-test: no qemu-aarch64(-static) to run arm64 binaries:" >&2
	echo "  run scripts/deps.sh test as root (make test does), or apt-get install qemu-user-static" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0 GOARCH=arm64

# Packages with cgo files outside the standard library (the standard
# library's, such as net's resolver, have pure-Go fallbacks). Listing needs
# cgo on to see them.
CGO_ENABLED=1 "$GO" list -test -deps -f '{{if and .CgoFiles (not .Standard)}}{{.ImportPath}}{{end}}' ./... |
	sed 's/ .*//' | sort -u >"$tmp/cgo"
# pure: packages that neither have cgo files nor depend on one; with -test,
# the same of the package with its tests (p, p [p.test], p_test, p.test).
# A package of tests alone (internal/e2e) is vetted, not built.
pure() {
	CGO_ENABLED=1 "$GO" list "$@" -f '{{if or .GoFiles .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{range .Deps}} {{.}}{{end}}{{end}}' ./... |
		awk -v cgo="$tmp/cgo" 'BEGIN { while ((getline l < cgo) > 0) bad[l] = 1 }
			NF { p = $1; sub(/\.test$/, "", p); sub(/_test$/, "", p); seen[p] = 1
			  for (i = 1; i <= NF; i++) if ($i in bad) no[p] = 1 }
			END { for (p in seen) if (!(p in no)) print p }' | sort
}
mapfile -t build < <(GOFLAGS= CGO_ENABLED=1 "$GO" list -f '{{if .GoFiles}}{{.ImportPath}}{{end}}' $(pure))
mapfile -t vet < <(pure -test)
mod=$("$GO" list -m)
left=$(CGO_ENABLED=1 "$GO" list ./... | grep -vxF -f <(printf '%s\n' "${build[@]}") | sed "s|^$mod/||" | tr '\n' ' ')
echo "arm64: building ${#build[@]} pure-Go packages, vetting ${#vet[@]} with their tests; not built (cgo, or tests alone): $left"
"$GO" build -o /dev/null "${build[@]}" 2>&1 || { echo "arm64-test: GOARCH=arm64 build failed" >&2; exit 1; }
"$GO" vet "${vet[@]}" || { echo "arm64-test: GOARCH=arm64 vet failed" >&2; exit 1; }

fail=0
for pkg in "${TEST_PKGS[@]}"; do
	bin="$tmp/$(echo "${pkg#./}" | tr / _).test"
	"$GO" test -c -o "$bin" "$pkg"
	start=$SECONDS
	# In the package's directory, as go test runs it (testdata/).
	if (cd "$pkg" && FMCAP_TEST_EXEC_WRAPPER="$QEMU" "$QEMU" "$bin" -test.v -test.short -test.count=1 -test.timeout=10m) >"$tmp/out" 2>&1; then
		echo "arm64 ok   $pkg under $(basename "$QEMU"): $(grep -c '^--- PASS' "$tmp/out") passed, $(grep -c '^--- SKIP' "$tmp/out") skipped, $((SECONDS - start)) s"
		grep -h 'xproc_test.go.*attempted' "$tmp/out" | sed 's/^ */  /' || true
	else
		cat "$tmp/out"
		echo "arm64 FAIL $pkg under $(basename "$QEMU")"
		fail=1
	fi
done
exit $fail
