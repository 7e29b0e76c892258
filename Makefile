# falco-scorer. `make` builds and tests; `make demo` runs the whole pipeline on
# embedded defaults; `make test` is what CI runs.
GO       ?= go
BIN      := bin/falco-scorer
PKGS     := ./...
# A duration can end in a spurious "context deadline exceeded" on Go 1.26
# (golang/go#75804); a count (e.g. 100000x) cannot. CI uses 3000x.
FUZZTIME ?= 30s

.PHONY: image check-image check-workflows all build test lint lint-ci fuzz bench bench-e2e bench-durability bench-ratios demo run soak clean check-alerts check-deploy tidy-check lab

all: build test

# VERSION is the tag `version` reports (git describe: the tag, or the tag
# plus commits and -dirty); SOURCE_DATE_EPOCH (the last commit's time) is
# every timestamp in the image, so the same commit gives the same digests.
# -buildvcs=auto (GOFLAGS may say false) records the commit and the dirty
# flag that `falco-scorer version` prints.
VERSION           ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION          ?= $(shell git rev-parse HEAD 2>/dev/null)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
IMAGE_REF         ?= ghcr.io/falco-scorer/falco-scorer:$(VERSION)
IMAGE_DIR         ?= bin/image
IMAGE_PLATFORMS   ?= amd64 arm64
LDFLAGS           := -s -w -buildid= -X main.version=$(VERSION)

build:
	$(GO) build -buildvcs=auto -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/falco-scorer

# image: the multi-arch OCI image (amd64, arm64) as an OCI layout in
# bin/image, without Docker: static binaries cross-compiled here, packed by
# cmd/mkimage (go-containerregistry) on an empty base. Push it with
# `crane push --index bin/image REF` or `skopeo copy --all oci:bin/image docker://REF`.
image:
	@for arch in $(IMAGE_PLATFORMS); do \
	  echo "go build linux/$$arch"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -buildvcs=auto -ldflags "$(LDFLAGS)" \
	    -o bin/linux_$$arch/falco-scorer ./cmd/falco-scorer || exit 1; \
	done
	$(GO) run ./cmd/mkimage -out $(IMAGE_DIR) -ref $(IMAGE_REF) -version $(VERSION) \
	  -revision $(REVISION) -created $(SOURCE_DATE_EPOCH) -config deploy/config/container.yaml \
	  $(foreach a,$(IMAGE_PLATFORMS),-binary linux/$(a)=bin/linux_$(a)/falco-scorer)

# check-workflows: actionlint on the GitHub Actions workflows (from the
# module proxy; shellcheck is used when it is on PATH).
ACTIONLINT ?= github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
check-workflows:
	$(GO) run $(ACTIONLINT) -no-color .github/workflows/*.yml
	@# The linter must see a broken reference (not pass everything).
	@if sed 's/steps\.push\.outputs/steps.pushh.outputs/' .github/workflows/release.yml | \
	  $(GO) run $(ACTIONLINT) -no-color - >/dev/null 2>&1; then \
	  echo "actionlint accepted a broken workflow"; exit 1; fi
	@echo "actionlint: workflows ok"

# check-image: build the image and inspect it (user, entrypoint, labels,
# platforms, no shell, size budget, same contract as deploy/Dockerfile).
check-image: image
	IMAGE_DIR=$(CURDIR)/$(IMAGE_DIR) $(GO) test -tags image -count=1 -run '^(TestImageLayout|TestImageAsFalcoSidecar)$$' -v ./cmd/mkimage
	@# Reproducible: a second build of the same tree has the same index.
	$(MAKE) --no-print-directory image IMAGE_DIR=bin/image-again >/dev/null
	@cmp -s $(IMAGE_DIR)/index.json bin/image-again/index.json || \
	  { echo "make image is not reproducible:"; cat $(IMAGE_DIR)/index.json bin/image-again/index.json; exit 1; }
	@rm -rf bin/image-again; echo "image reproducible: $$(grep -o 'sha256:[0-9a-f]*' $(IMAGE_DIR)/index.json)"

test:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# check-deploy: lint and render the Helm chart, and the vendored
# falcosecurity/falco chart (../shared/vendor/falcosecurity-charts, or
# FALCO_CHARTS) with our values and sidecar post-renderer, with Helm itself
# (built from the module proxy: a few minutes on a cold build cache,
# seconds after); check every rendered object, and validate it and every
# shipped manifest against the Kubernetes OpenAPI schemas (k8s.io/kubernetes
# module, offline once cached) and the vendored CRDs. CI runs it; a Helm
# that cannot be built, or charts that are missing, fail.
check-deploy:
	$(GO) test -tags deploy -count=1 -timeout 30m -run '^(TestHelmChartRender|TestHelmChartValuesSchema|TestFalcoChartRender|TestShippedManifestsOpenAPI|TestOpenAPIValidatorRejects)$$' -v ./deploy

# tidy-check: go.mod and go.sum are what `go mod tidy` makes of the code.
tidy-check:
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }

lint:
	$(GO) vet $(PKGS)
	$(GO) vet -tags deploy ./deploy
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

fuzz:
	@for t in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -h '^func Fuzz' $$t/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "== $$t $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$t || exit 1; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 6 $$($(GO) list $(PKGS) | grep -v /cmd/falco-loadgen) | tee bench.out
	$(GO) test -run '^$$' -bench '^BenchmarkPipeline$$' -benchmem -count 6 ./cmd/falco-loadgen | tee -a bench.out
	$(GO) test -run '^$$' -bench '^BenchmarkPipelineScale$$' -benchmem -benchtime 200000x -count 3 -timeout 30m ./cmd/falco-loadgen | tee -a bench.out
	$(MAKE) bench-e2e
	$(MAKE) bench-durability
	$(GO) run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da bench.out bench-e2e.out | tee bench-summary.txt
	@echo "medians in bench-summary.txt; write the dated report in cmd/falco-loadgen/results/"

# bench-e2e: service vs no-op receiver with Kafka (one run = all phases), replay, scale; about 4 min per count.
bench-e2e:
	$(GO) test -run '^$$' -bench '^Benchmark(E2E|Replay|Scale)$$' -benchtime 1x -count 3 -timeout 60m ./cmd/falco-loadgen | tee bench-e2e.out

# bench-durability: one Falco (1 connection) and 16 connections as ratios to the no-op server, in
# interleaved rounds (medians over DUR_ROUNDS), default and strict durability, each also with 2 ms
# added to every journal sync; disk budget per event and at a steady 1,000 events/s (about 5 min).
# DUR_DIR=/mnt/x puts the services' data on a file system of its own, so that the block device's
# counters are theirs alone (see cmd/falco-loadgen/results/ for a loop-device recipe). DUR_MODES
# chooses the modes (default: default,strict,default-sync2ms,strict-sync2ms; default-raw-outbox and
# default-sync2ms-raw-outbox store alert payloads uncompressed, to compare in the same run).
DUR_ROUNDS ?= 3
DUR_DIR    ?=
DUR_MODES  ?=
bench-durability:
	$(GO) test -run '^$$' -bench '^BenchmarkDurability$$' -benchtime 1x -count 1 -timeout 60m -v ./cmd/falco-loadgen \
	  -args -dur.rounds $(DUR_ROUNDS) $(if $(DUR_DIR),-dur.dir $(DUR_DIR)) $(if $(DUR_MODES),-dur.modes $(DUR_MODES)) | tee bench-durability.out

# bench-ratios: replay and the gRPC input, each as a ratio to a baseline measured in the same run
# (issue 19): the gRPC input against client-go's generated client on the same in-process Falco
# outputs server (x-client-go, -count 6), and `falco-scorer replay` against the NDJSON decode loop
# alone over the same capture (x-decode-loop, -count 3); medians in bench-ratios-summary.txt.
bench-ratios:
	$(GO) test -run '^$$' -bench '^BenchmarkGRPCRatio$$' -benchmem -count 6 ./scorer/source | tee bench-ratios.out
	$(GO) test -run '^$$' -bench '^BenchmarkReplay$$' -benchtime 1x -count 3 -timeout 30m ./cmd/falco-loadgen | tee -a bench-ratios.out
	$(GO) run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da bench-ratios.out | tee bench-ratios-summary.txt

demo: build
	./$(BIN) demo

run: build
	./$(BIN) serve

# soak: 10 minutes at half the measured maximum rate (RSS, goroutines,
# latency every minute; report in soak-report.md) and the 30 s Kafka outage.
SOAK_DURATION ?= 10m
soak:
	SOAK_DURATION=$(SOAK_DURATION) SOAK_REPORT=$(CURDIR)/soak-report.md \
	  $(GO) test -tags soak -count=1 -timeout 60m -v -run '^(TestSoak|TestKafkaOutage)$$' ./cmd/falco-scorer

clean:
	rm -rf bin data bench.out

lint-ci:
	$(GO) vet $(PKGS)
	$(GO) vet -tags deploy ./deploy
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# check-alerts: promtool check and unit tests of the Prometheus alerting
# rules (its first build fetches about 2 GB of modules, so make test only
# runs them when promtool is on PATH).
PROMTOOL ?= github.com/prometheus/prometheus/cmd/promtool@v0.316.0
check-alerts:
	$(GO) run $(PROMTOOL) check rules deploy/helm/falco-scorer/files/prometheus-rules.yaml
	cd deploy && $(GO) run $(PROMTOOL) test rules testdata/prometheus-rules_test.yaml

# lab: record the evaluation lab (real nginx, redis, a Python API and a cron
# worker under strace, normal traffic, drift and attacks; about 11 minutes)
# and convert it to scorer/evaluate/lab/testdata. Needs root and
# `apt-get install -y strace nginx redis-server python3 curl sudo`; not part
# of make test. See scorer/evaluate/lab/README.md.
LAB_RAW   ?= /var/tmp/falco-lab/raw
LAB_LEARN ?= 5m
LAB_TEST  ?= 5m
lab:
	$(GO) build -o bin/falco-lab ./cmd/falco-lab
	./bin/falco-lab record -raw $(LAB_RAW) -learn $(LAB_LEARN) -test $(LAB_TEST)
	./bin/falco-lab convert -raw $(LAB_RAW) -out scorer/evaluate/lab/testdata
