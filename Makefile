# fmcap — see README.md. Every target that needs system packages installs them
# first (scripts/deps.sh: apt-get as root, a clear message otherwise).
GO      ?= go
BIN     := bin
CMDS    := ./fwd ./writer ./tools/fmring ./tools/fminject ./tools/fmslice ./tools/fmctl
FUZZTIME ?= 20s

.PHONY: all build build-dpdk test test-short race fuzz bench demo clean deps-build deps-test deps-demo deps-bench

all: build

deps-build deps-dpdk deps-test deps-demo deps-bench: deps-%:
	@scripts/deps.sh $*

build: deps-build
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(CMDS)

# fwd with the DPDK backend (cgo over Debian's libdpdk-dev 22.11).
build-dpdk: deps-dpdk build
	$(GO) build -tags dpdk -o $(BIN)/fwd-dpdk ./fwd

# The full suite: unit, fuzz seeds, cross-process, crash and end-to-end tests
# (the ones that need root or missing tools skip and say why), then the ring
# and the writer again under the race detector.
test: deps-test
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -race -short ./shmring ./writer/...

test-short: deps-test
	$(GO) test -count=1 -short ./...

# Run every fuzz target for FUZZTIME each.
fuzz: deps-test
	@set -e; for p in ./shmring ./writer/chunk ./internal/timespec ./fwd; do \
	  for f in $$($(GO) test -list '^Fuzz' $$p | grep ^Fuzz); do \
	    echo "== $$p $$f"; $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$p; \
	  done; done

# Go benchmarks beside the code; whole-pipeline comparisons are in bench/.
bench: deps-bench build
	$(GO) test -run '^$$' -bench . -benchmem ./shmring ./writer/... ./fwd
	bench/run.sh

demo: deps-demo build
	scripts/demo.sh

clean:
	rm -rf $(BIN) demo-out
