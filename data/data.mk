# Data targets, included by the main Makefile (which defines `data`, running
# cmd/datafetch, and exports DATA_DIR).
DATA_DIR ?= datasets

.PHONY: data-all data-check data-test data-bench

# Also the optional sets: WikiText-2 train splits, WikiText-103 raw
# (~190 MB zip), LAMBADA plain text (~330 MB tar.gz).
data-all:
	go run ./cmd/datafetch -dir $(DATA_DIR) -all

# Offline: report what is present, missing or damaged, and where to put it.
data-check:
	go run ./cmd/datafetch -dir $(DATA_DIR) -offline

data-test:
	go vet ./data/... ./cmd/datafetch/...
	go test ./data/... ./cmd/datafetch/...

# Tokenisation MB/s, packing tokens/s, cold vs cached load of the data folder.
data-bench:
	go test -run '^$$' -bench . -benchtime 3x ./data/
