# fmcap — see README.md. Every target that needs system packages installs them
# first (scripts/deps.sh: apt-get as root, a clear message otherwise).
GO      ?= go
BIN     := bin
CMDS    := ./cmd/fwd ./cmd/writer ./cmd/indexer ./cmd/fmcapd ./cmd/fmupload ./tools/fmring ./tools/fminject ./tools/fmctl
FUZZTIME ?= 20s
# Executions spent minimizing each input that finds new coverage (Go's
# default is 60 s each: on whole-chunk inputs the fuzzer then spent its time
# minimizing and reported 0 execs/s).
FUZZMIN ?= 1000x
# --version: the toolchain stamps the commit itself (internal/version), but
# not in a git worktree nor under GOFLAGS=-buildvcs=false; then these -X
# values, read from git here, say the same thing.
VPKG    := github.com/fmcap/fmcap/internal/version
GITREV  := $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := $(if $(GITREV),-X $(VPKG).revision=$(GITREV) -X $(VPKG).vcsTime=$(shell TZ=UTC git log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd) -X $(VPKG).modified=$(shell git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo true || echo false))
# urfave_cli_no_docs: urfave/cli v2 leaves out its man page and Markdown
# generators (go-md2man, blackfriday), which no command uses; blackfriday's
# package initialisers alone cost every fmslice run about 0.7 ms and 70 page
# faults before main (perf stat of fmslice --version), of a one-minute
# slice's 20-30 ms (bench/slice.sh). fmslice is built twice: fmslice
# without the S3 client, whose initialisers cost as much again, and
# fmslice-s3 with it, which fmslice runs in its place for s3:// stores
# (tools/fmslice/store_nos3.go); go build ./tools/fmslice makes one
# binary that does both.
TAGS    := urfave_cli_no_docs
GOBUILD := $(GO) build -ldflags '$(LDFLAGS)'

.PHONY: all build build-dpdk install uninstall test test-short race fuzz bench demo clean deps-build deps-test deps-demo deps-bench

all: build

deps-build deps-dpdk deps-test deps-demo deps-bench: deps-%:
	@scripts/deps.sh $*

build: deps-build
	@mkdir -p $(BIN)
	$(GOBUILD) -tags '$(TAGS)' -o $(BIN)/ $(CMDS)
	$(GOBUILD) -tags '$(TAGS),fmslice_nos3' -o $(BIN)/fmslice ./tools/fmslice
	$(GOBUILD) -tags '$(TAGS)' -o $(BIN)/fmslice-s3 ./tools/fmslice

# fwd with the DPDK backend (cgo over Debian's libdpdk-dev 22.11).
build-dpdk: deps-dpdk build
	$(GOBUILD) -tags 'dpdk,$(TAGS)' -o $(BIN)/fwd-dpdk ./cmd/fwd

# The full suite: unit, fuzz seeds, cross-process, crash and end-to-end tests
# (the ones that need root or missing tools skip and say why), then the ring
# and the writer again under the race detector.
# -timeout: the end-to-end package runs for minutes on a loaded machine (a
# debootstrap, 100 MB transfers through fwd on both backends); Go's default
# of 10 minutes per package would fail it there.
# Last, arm64: every pure-Go package built for it, and the ring's and the
# store formats' tests run as arm64 binaries under qemu-user.
test: deps-test
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 50m ./...
	$(GO) test -count=1 -race -short ./shmring ./writer/... ./store ./store/chunk
	GO=$(GO) scripts/arm64-test.sh

test-short: deps-test
	$(GO) test -count=1 -short ./...

# Run every fuzz target for FUZZTIME each.
fuzz: deps-test
	@set -e; for p in ./shmring ./store/chunk ./internal/timespec ./fwd ./store/segment ./query ./internal/libpcap ./fmcapd; do \
	  for f in $$($(GO) test -list '^Fuzz' $$p | grep ^Fuzz); do \
	    echo "== $$p $$f"; $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) $$p; \
	  done; done

# Go benchmarks beside the code; whole-pipeline comparisons are in bench/.
bench: deps-bench build
	$(GO) test -run '^$$' -bench . -benchmem ./shmring ./writer/... ./fwd ./indexer/... ./store/chunk ./store/segment ./query
	bench/run.sh

demo: deps-demo build
	scripts/demo.sh

# Binaries, units, the systemd user and a commented configuration (kept if
# one is there already). DESTDIR for packaging; PREFIX for the binaries.
PREFIX  ?= /usr/local
UNITDIR ?= /etc/systemd/system
INSTALLED := fwd writer indexer fmcapd fmupload fmring fminject fmslice fmslice-s3 fmctl
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)/usr/lib/sysusers.d $(DESTDIR)$(PREFIX)/share/doc/fmcap
	install -m 0755 $(addprefix $(BIN)/,$(INSTALLED)) $(DESTDIR)$(PREFIX)/bin/
	for u in systemd/*.service systemd/*.target; do \
	  sed 's#/usr/local/bin/#$(PREFIX)/bin/#g' $$u > $(DESTDIR)$(UNITDIR)/$$(basename $$u); chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$u); done
	install -m 0644 systemd/fmcap.sysusers $(DESTDIR)/usr/lib/sysusers.d/fmcap.conf
	install -D -m 0644 systemd/fmcap.tmpfiles $(DESTDIR)/usr/lib/tmpfiles.d/fmcap.conf
	install -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/fmcap/README.md
	install -d -m 0750 $(DESTDIR)/etc/fmcap
	[ -e $(DESTDIR)/etc/fmcap/fmcap.yaml ] || install -m 0640 systemd/fmcap.yaml $(DESTDIR)/etc/fmcap/fmcap.yaml
	@if [ -z "$(DESTDIR)" ]; then \
	  systemd-sysusers /usr/lib/sysusers.d/fmcap.conf 2>/dev/null || useradd --system --home-dir /var/lib/fmcap --shell /usr/sbin/nologin fmcap 2>/dev/null || true; \
	  systemd-tmpfiles --create /usr/lib/tmpfiles.d/fmcap.conf 2>/dev/null || { chgrp fmcap /etc/fmcap && chmod 0770 /etc/fmcap && chown fmcap:fmcap /etc/fmcap/fmcap.yaml; } 2>/dev/null || true; \
	  systemctl daemon-reload 2>/dev/null || true; \
	  echo "installed: edit /etc/fmcap/fmcap.yaml, then systemctl enable --now fmcap.target"; fi

# Removes what install put in place, except /etc/fmcap and /var/lib/fmcap
# (the operator's configuration and captures).
uninstall:
	-@[ -n "$(DESTDIR)" ] || systemctl disable --now fmcap.target fmcap-fwd.service fmcap-writer.service fmcap-ring.service fmcap-hugepages.service 2>/dev/null
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(INSTALLED))
	rm -f $(DESTDIR)$(UNITDIR)/fmcap*.service $(DESTDIR)$(UNITDIR)/fmcap.target $(DESTDIR)/usr/lib/sysusers.d/fmcap.conf $(DESTDIR)/usr/lib/tmpfiles.d/fmcap.conf
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/fmcap
	-@[ -n "$(DESTDIR)" ] || systemctl daemon-reload 2>/dev/null

clean:
	rm -rf $(BIN) demo-out
