# Conveyor: one binary that queues, schedules, runs and explains background jobs.
export GOTOOLCHAIN := local
GO ?= go
BIN := bin/conveyor
PKGS := ./...

.PHONY: run build test vet fmt bench chaos fuzz soak soak-page clean

# run: the demo — the appliance with the seed's topology on embedded storage
# under ./var, the sandbox's accounts and connector, and a local AI stand-in.
# Production starts without --demo (see the README).
run: build
	$(BIN) serve --demo --data ./var

# The binary is pure Go (modernc sqlite): built without cgo, it runs anywhere.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) .

# Tests are built with the queue's failpoints compiled in (queue/failpoint.go);
# the product's build never has them.
TESTTAGS := -tags failpoints

# test: everything CI runs — vet, gofmt, and the race-enabled test suite
# (with the short variants of the crash loop and the fuzz targets).
# The race detector needs cgo (gcc is on every Debian machine with Go).
test: vet fmt
	CGO_ENABLED=1 $(GO) test $(TESTTAGS) -race -count=1 -timeout 20m $(PKGS)

vet:
	$(GO) vet $(PKGS)
	$(GO) vet $(TESTTAGS) $(PKGS)

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

bench: build
	$(BIN) bench

# soak: the speed that must hold for hours (SOAK, default 30m) at half the
# measured maximum rate; the curve goes to docs/soak.csv and, with gnuplot
# (Debian's gnuplot-nox), to docs/soak.png.
SOAK ?= 30m
soak: build
	$(BIN) bench --phases soak --duration $(SOAK) --csv docs/soak.csv | tee docs/soak.txt
	@if command -v gnuplot >/dev/null; then gnuplot docs/soak.gp && echo "drew docs/soak.png"; \
	else echo "gnuplot is not installed (apt-get install gnuplot-nox): docs/soak.png was not drawn"; fi

# soak-page: the dashboard open in chromium for SOAK_PAGE_MINUTES (default 60)
# under 2,000 jobs/s with 5 failures/s and a schedule change every 20 s; one
# row a minute (JavaScript heap after GC, DOM nodes, listeners, jobs/s, the
# renderer processes' resident memory) goes
# to docs/soak-page.csv. Needs Debian's chromium, like the browser tests.
SOAK_PAGE_MINUTES ?= 60
soak-page:
	CONVEYOR_BENCH_MINUTES=$(SOAK_PAGE_MINUTES) CONVEYOR_PAGE_CSV=$(CURDIR)/docs/soak-page.csv \
	  $(GO) test -run '^$$' -bench '^BenchmarkDashboardPageMemory$$' -benchtime 1x -timeout $$(( $(SOAK_PAGE_MINUTES) + 15 ))m .

# chaos: the long crash loop (50 SIGKILLs), the power-loss loop (30 cuts on a
# filesystem that loses unsynced writes) and the long random-model run.
chaos:
	CONVEYOR_CHAOS=1 $(GO) test $(TESTTAGS) -count=1 -timeout 60m -run 'Crash|Model|Chaos|Kill|PowerLoss' $(PKGS)

# fuzz: each fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test $(TESTTAGS) -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin
