# Two commands set a fresh Debian bookworm machine up:
#   make run    trains, evaluates and records the default experiment
#   make test   runs the test suite
# Both run `setup` first, which installs what is missing and does nothing
# the second time.

SHELL := /bin/bash
GO ?= go
# make run CFG=study-text8 runs a named config instead of the built-in default.
CFG ?=
ARGS ?=
# python3-torch is Debian's PyTorch on the same libtorch: the peer that the tests and
# `make bench` compare the Go model and training step against. libgloo-dev holds the
# Gloo headers that libtorch's c10d headers include (the c10d shim, dist/c10d; the
# library itself comes with libtorch).
APT_PACKAGES := libtorch-dev libopenblas0-pthread libgloo-dev g++ pkg-config python3-torch
# Configs name data files relative to DATA_DIR: the shared folder beside this
# checkout when there is one, else the folder `make data` fills.
export DATA_DIR ?= $(shell [ -d ../shared/data ] && cd ../shared/data && pwd || echo $(CURDIR)/datasets)

include data/data.mk

.PHONY: setup apt torchprep run test vet fuzz bench bench-sample gpucheck-bundle study study-text8 data clean-torch

setup: apt torchprep

# Install the Debian packages that are missing (no-op when all present).
apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "setup: installing$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	else echo "setup: Debian packages present"; fi

# Prepare gotch for the libtorch found here (cached; see tools/torchprep).
torchprep:
	@GOWORK=off $(GO) run ./tools/torchprep

run: setup
	$(GO) run ./experiments $(if $(CFG),-cfg $(CFG)) $(ARGS)

vet: setup
	$(GO) vet ./...

# The test command of the README and of CI: vet, all tests (the end-to-end
# sweeps included), and the slow-tagged checks that fit: the 2,000-step RSS
# soak and the parameter counts of the large presets (about 2 min more), and
# the GPU check's dry run on the CPU (tools/gpucheck.sh, about a minute).
# The full sampler benchmark table (-tags slow, TestBenchTable) is run by
# `make bench-sample`.
test: setup
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -timeout 10m -tags slow -run 'TestSoakRSS|TestLargePresetParamCounts' -v ./train ./models
	$(MAKE) --no-print-directory fuzz
	@if [ -f "$(DATA_DIR)/warpeace/warpeace_input.txt" ]; then \
		$(MAKE) --no-print-directory gpucheck-bundle && GPUCHECK_DEVICE=cpu tools/gpucheck.sh; \
	else echo "gpucheck dry run skipped: no $(DATA_DIR)/warpeace/warpeace_input.txt (like the data-dependent tests; set DATA_DIR)"; fi

# Fuzz every reader of outside input for FUZZTIME each (their seeds also run
# as plain tests above). A crasher lands in <pkg>/testdata/fuzz/: commit it
# with its fix. FuzzParquet runs its seeds only: within seconds of fuzzing,
# parquet-go (the reader, not our code) can take a worker past the fuzzer's
# deadline on a malformed header, and the minimised input does not
# reproduce it; `make fuzz FUZZ_TARGETS=./data:FuzzParquet FUZZTIME=60s`
# shows it.
#
# The budget is a count of inputs, not a duration: Go 1.26's fuzz
# coordinator can report its own -fuzztime deadline as a failure ("context
# deadline exceeded", no crasher written; golang/go#75804, fixed in 1.27),
# and a loaded CI machine hit it on FuzzOpen. A count sets no deadline.
# 10,000 inputs is 2-10 s a target on 2 cores. A duration still works for a
# long local hunt (FUZZTIME=10m), with that caveat.
FUZZTIME ?= 10000x
FUZZ_TARGETS ?= ./experiments:FuzzConfig ./data:FuzzTokenCache ./data:FuzzJSONL \
	./checkpoint:FuzzOpen ./sampling:FuzzParseInfill
fuzz: setup
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $$t ($(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$${t##*:}\$$" -fuzztime=$(FUZZTIME) $${t%%:*}; \
	done

bench-sample: setup
	$(GO) test -count=1 -timeout 120m -tags slow -run TestBenchTable -v ./sampling

bench: setup
	$(GO) run ./experiments -mode bench

# What tools/gpucheck.sh needs on a GPU machine without Go or network: the
# binary, torchprep (pure Go: rebuilds the bindings with g++ only), the
# model-parity test binary and a small corpus, in .gpucheck/bundle.tar.gz.
# Carry .gpucheck and .torch/src there and run tools/gpucheck.sh.
gpucheck-bundle: setup
	rm -rf .gpucheck/stage && mkdir -p .gpucheck/stage/bin .gpucheck/stage/data/warpeace
	$(GO) build -ldflags='-s -w' -o .gpucheck/stage/bin/experiments ./experiments
	CGO_ENABLED=0 GOWORK=off $(GO) build -o .gpucheck/stage/bin/torchprep ./tools/torchprep
	$(GO) test -c -tags peer -ldflags='-s -w' -o .gpucheck/stage/bin/models-peer.test ./models
	cp $(DATA_DIR)/warpeace/warpeace_input.txt .gpucheck/stage/data/warpeace/
	tar -czf .gpucheck/bundle.tar.gz -C .gpucheck/stage bin data
	rm -rf .gpucheck/stage
	@ls -l .gpucheck/bundle.tar.gz

# The comparison study (docs/study-cpu.md): about 90 min on 2 cores. A killed
# study started again resumes; the report rewrites the document's table.
study: setup
	$(GO) run ./experiments -cfg study-cpu.yaml
	$(GO) run ./experiments -cfg study-cpu.yaml -mode report -doc docs/study-cpu.md -out docs/study-cpu
	$(GO) run ./experiments -cfg study-cpu.yaml -mode plot -out docs/study-cpu

# The character-level study (docs/study-text8.md): about 5 h on 2 cores
# (22 runs, one at a time), then ~25 min of decoding for the frontier.
study-text8: setup
	$(GO) run ./experiments -cfg study-text8.yaml
	$(GO) run ./experiments -cfg study-text8.yaml -mode frontier -out docs/study-text8
	$(GO) run ./experiments -cfg study-text8.yaml -mode report -doc docs/study-text8.md -out docs/study-text8
	$(GO) run ./experiments -cfg study-text8.yaml -mode plot -out docs/study-text8

data:
	$(GO) run ./cmd/datafetch -dir $(DATA_DIR)

clean-torch:
	rm -rf .torch go.work go.work.sum
