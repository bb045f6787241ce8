# Gatehouse. `make run` starts a local demo; `make test` runs every test.
GO ?= go
BIN := bin/gatehouse

.PHONY: build run test vet bench fmt clean

build:
	$(GO) build -o $(BIN) ./cmd/gatehouse

run: build
	./scripts/demo.sh

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: vet
	$(GO) test -race -timeout 25m ./...

bench: build
	./bench/run.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin .run
