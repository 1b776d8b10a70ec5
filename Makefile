# Shoal — build, run and test.
#   make run    build and start an agent on the embedded defaults (registry 127.0.0.1:5000)
#   make test   install test tools, then run every test (conformance and real clients included)

GO      ?= go
BIN     := bin/shoal
TOOLS   := $(CURDIR)/.tools/bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/shoal-dev/shoal/agent.Version=$(VERSION)
export PATH := $(TOOLS):$(PATH)

.PHONY: build run test test-short conformance bench fuzz lint tools docs clean

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./agent/cmd/shoal

run: build
	./$(BIN) agent

tools:
	./.ci/tools.sh

# Every test, including the OCI conformance suite and the crane/skopeo round trip.
test: tools build
	$(GO) vet ./...
	$(GO) test -race -timeout 20m ./...
	# A count, not a duration: a 1s budget can run out while go test replays
	# the cached corpus, which it reports as a failure on a loaded machine.
	FUZZTIME=2000x ./.ci/fuzz.sh

# Quick unit tests only (no external tools).
test-short:
	$(GO) test -short ./...

# The OCI distribution-spec conformance suite against a fresh agent.
conformance: tools build
	$(GO) test -run 'TestConformance' -v -count=1 ./agent/

bench: tools
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./...

# Every fuzz target for FUZZTIME each (default 30s); make test runs 2000 inputs of each.
fuzz:
	./.ci/fuzz.sh

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: files above need formatting'; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# Regenerate docs/CONFIGURATION.md from the config struct (a test fails when it is stale).
docs:
	$(GO) run ./agent/config/gen

clean:
	rm -rf bin .tools
