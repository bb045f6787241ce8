# Gatehouse. `make run` starts a local demo; `make test` runs every test.
GO ?= go
BIN := bin/gatehouse

.PHONY: build run test vet bench fmt clean web-assets

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

# web-assets refreshes the vendored front-end libraries from web/package-lock.json.
# The copies in web/static/vendor are committed, so building needs no npm.
VENDOR := web/static/vendor
web-assets:
	cd web && npm ci --no-audit --no-fund
	cp web/node_modules/asciinema-player/dist/bundle/asciinema-player.min.js $(VENDOR)/
	cp web/node_modules/asciinema-player/dist/bundle/asciinema-player.css $(VENDOR)/
	cp web/node_modules/@xterm/xterm/lib/xterm.js $(VENDOR)/
	cp web/node_modules/@xterm/xterm/css/xterm.css $(VENDOR)/
	cp web/node_modules/asciinema-player/LICENSE $(VENDOR)/LICENSE.asciinema-player
	cp web/node_modules/@xterm/xterm/LICENSE $(VENDOR)/LICENSE.xterm
