GO ?= go
PKGS = ./...

.PHONY: cluster test race vet lint fuzz bench build
cluster: build
	bin/tako-cluster examples/local_cluster.yaml -p 8080
build:
	$(GO) build -o bin/ ./cmd/...
test:
	$(GO) test $(PKGS)
race:
	$(GO) test -race $(PKGS)
vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
lint: vet
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 20s ./server/config/
	$(GO) test -run '^$$' -fuzz FuzzServe -fuzztime 20s ./httpproxy/
	$(GO) test -run '^$$' -fuzz FuzzDecodeKey -fuzztime 20s ./httpproxy/
	$(GO) test -run '^$$' -fuzz FuzzLookup -fuzztime 20s ./hashring/
	$(GO) test -run '^$$' -fuzz FuzzParseHeader -fuzztime 20s ./kv/
	$(GO) test -run '^$$' -fuzz FuzzHeader -fuzztime 20s ./codec/
	$(GO) test -run '^$$' -fuzz FuzzDecodeRequest -fuzztime 20s ./codec/
	$(GO) test -run '^$$' -fuzz FuzzDecodeReply -fuzztime 20s ./codec/
	$(GO) test -run '^$$' -fuzz FuzzStream -fuzztime 20s ./codec/
bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./kv/ ./httpproxy/ ./hashring/ ./eventloop/ ./server/ ./codec/
