# certbound — two commands set up a fresh machine:
#   make demo   the local stack end to end (AS + nginx mTLS + certbound)
#   make test   every check CI runs
# Both install what they need themselves (idempotently).

SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
# cargo-lambda and cfn-lint, at the versions pinned in scripts/tools-requirements.txt,
# which `make deps` installs into this venv (scripts/install-lambda-tools.sh).
# Recipes run them from here, ahead of any other version on PATH.
TOOLS_BIN := $(CURDIR)/.tools/venv/bin
# Outputs captured for the secret scan (make test).
SCAN_DIR := $(CURDIR)/target/secret-scan

.PHONY: help deps build release lambda-build lint unit reference-diff fault-matrix cfn-lint lambda-test e2e browser-test scan-begin secret-scan test demo bench callgrind churn bench-compare load abuse stack-up stack-down clean
.PHONY: fuzz fuzz-smoke

help:
	@echo "make demo         run the local stack and print the binding matrix"
	@echo "make test         fmt + clippy + unit/integration tests + cfn-lint + Lambda runtime tests + end-to-end + browser test"
	@echo "make browser-test CORS on the local stack in headless Chromium (screenshots in target/browser/)"
	@echo "make fault-matrix every HTTP backend against a hostile AS (FAULT_MATRIX_FLAGS=--markdown FILE)"
	@echo "make fuzz         every cargo fuzz target, FUZZ_RUNS (1000000) executions each (FUZZ_SECONDS caps time, FUZZ_TARGETS picks)"
	@echo "make bench        criterion benchmarks of the core (no network)"
	@echo "make callgrind    instructions per cached decision (valgrind)"
	@echo "make churn        1 000 000 distinct tokens through serve with the cache on (RSS)"
	@echo "make bench-compare  certbound vs Authlete's Python reference, both as Lambda functions (BENCH_COMPARE_FLAGS=--quick)"
	@echo "make load         load script against the running local stack (scripts/load.sh)"
	@echo "make abuse        serve under abuse: 10 000 connections, slowloris, a slow AS (scripts/abuse.py)"
	@echo "make stack-up / stack-down   the local stack alone"

# System packages (apt) and node_modules (npm ci) when missing; the pinned
# Python-packaged tools into .tools/venv unless present at their versions.
deps:
	@scripts/install-deps.sh

build:
	$(CARGO) build --all-targets

release:
	$(CARGO) build --release

# The bootstrap that SAM (rust-cargolambda) expects, native arch.
lambda-build: deps
	# RUST_LOG is for certbound (make test exports debug), not for cargo-lambda.
	env -u RUST_LOG PATH="$(TOOLS_BIN):$$PATH" $(CARGO) lambda build --release
	@ls -l target/lambda/certbound/bootstrap

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test --all-targets
	$(CARGO) test --doc

# Same events and AS answers to Authlete's Python Authorizer (PyPI authlete
# 1.3.0, in target/refvenv) and to certbound: decisions and context compared.
reference-diff: build
	python3 scripts/reference_diff.py --bin target/debug/certbound

# Every HTTP backend (Authlete, RFC 7662, JWT/JWKS) against a hostile AS
# (scripts/hostile_as.py, stdlib only, 127.0.0.1): refused, timeouts, slow
# drip, resets, 5xx/401/403, bad bodies, 10 MB, deep nesting, redirects, TLS
# failures, keep-alive closes. Never Allow, within CERTBOUND_TIMEOUT_MS +
# 100 ms, one reason per case; the README table comes from --markdown.
# The timing promise is checked on the binary that ships (the release
# bootstrap, which has every subcommand): a debug build, at RUST_LOG=debug,
# answered 1 105-1 152 ms for a 1 000 ms timeout in one CI run (the step
# itself 1 010-1 034 ms), the release build 1 007-1 030 ms.
FAULT_MATRIX_FLAGS ?=
fault-matrix: lambda-build
	@mkdir -p $(SCAN_DIR)
	set -o pipefail; python3 scripts/fault_matrix.py --bin target/lambda/certbound/bootstrap $(FAULT_MATRIX_FLAGS) 2>&1 \
	  | tee $(SCAN_DIR)/fault-matrix.out

# The template as written (every value at once), then rendered under every
# relevant combination of its options (scripts/template_matrix.py: Rules,
# Conditions, the resources each combination deploys, the dashboard JSON, and
# cfn-lint on the two resolved "everything on" templates).
cfn-lint: deps
	$(TOOLS_BIN)/cfn-lint template.yaml
	$(TOOLS_BIN)/python scripts/template_matrix.py template.yaml

lambda-test: lambda-build
	@mkdir -p $(SCAN_DIR)
	set -o pipefail; python3 scripts/lambda_runtime_test.py --bin target/lambda/certbound/bootstrap 2>&1 \
	  | tee $(SCAN_DIR)/lambda-test.out

# The stack runs the same binary the Lambda test used (one release build).
e2e: lambda-build
	@mkdir -p $(SCAN_DIR)
	set -o pipefail; CERTBOUND_BIN=$(CURDIR)/target/lambda/certbound/bootstrap scripts/e2e.sh 2>&1 \
	  | tee $(SCAN_DIR)/e2e.out

# CORS for browser clients, in headless Chromium (Debian's chromium, pinned in
# scripts/browser-test.sh; playwright-core pinned in browser/package.json)
# against the local stack, with the binary e2e uses. Screenshots: target/browser/.
browser-test: lambda-build
	@mkdir -p $(SCAN_DIR)
	set -o pipefail; CERTBOUND_BIN=$(CURDIR)/target/lambda/certbound/bootstrap scripts/browser-test.sh 2>&1 \
	  | tee $(SCAN_DIR)/browser-test.out

# No secret in any output: make test runs the fault matrix, the Lambda runtime
# tests and the end-to-end matrix at RUST_LOG=debug; every script records the secrets it
# handles in $(SCAN_DIR)/secrets.tsv; secret-scan then looks for them in
# their captured output and in every log written since scan-begin.
SCAN_LOGS := $(CURDIR)/.stack/logs $(CURDIR)/target/*.log
scan-begin:
	@rm -rf $(SCAN_DIR) && mkdir -p $(SCAN_DIR)
	@python3 scripts/secret_scan.py mark --state $(SCAN_DIR)/marks.json $(SCAN_LOGS)

secret-scan:
	python3 scripts/secret_scan.py scan --state $(SCAN_DIR)/marks.json --secrets $(SCAN_DIR)/secrets.tsv \
	  --stack-dir $(CURDIR)/.stack --pem-source events/*.json -- $(SCAN_DIR)/*.out '$(SCAN_DIR)/fault-matrix/*.log' $(SCAN_LOGS)

test: export RUST_LOG = debug
test: export SECRET_SCAN_FILE = $(SCAN_DIR)/secrets.tsv
test: deps lint unit reference-diff cfn-lint scan-begin fault-matrix lambda-test e2e browser-test secret-scan fuzz-smoke
	@echo "make test: all green"

# cargo fuzz (libFuzzer, ASan) targets in fuzz/ (README "Fuzzing"):
# scripts/fuzz.sh installs cargo-fuzz 0.13.2 into .tools/cargo and builds
# with the stable toolchain and RUSTC_BOOTSTRAP=1. `fuzz-smoke` (in `test`)
# builds them all and runs each from its seeds, reproducibly (seed 1,
# FUZZ_SMOKE_RUNS=20000 executions, at most FUZZ_SMOKE_SECONDS=30).
FUZZ_RUNS ?= 1000000
FUZZ_SECONDS ?=
FUZZ_TARGETS ?=
fuzz:
	FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh run $(FUZZ_TARGETS)

fuzz-smoke:
	scripts/fuzz.sh smoke

demo: deps release
	scripts/demo.sh

bench:
	$(CARGO) bench --bench core

# certbound serve under abuse (memory with 10 000 connections, slowloris, the
# connection and in-flight caps, a slow AS); prints what it measured.
abuse: release
	python3 scripts/abuse.py --bin target/release/certbound

# Instructions per cached decision (REST event -> Allow policy, cache hit):
# stable under noise, unlike time.
callgrind:
	$(CARGO) bench --bench hotpath --no-run
	valgrind --tool=callgrind --callgrind-out-file=target/callgrind.out \
	  $$(ls -t target/release/deps/hotpath-* | grep -v '\.d$$' | head -n1) 2000 2>&1 \
	  | awk '/refs:/ {gsub(",", "", $$4); printf "callgrind: %d instructions per cached decision (2000 decisions)\n", $$4 / 2000}'

# Memory under churn: 1 000 000 distinct tokens through serve, cache on.
churn: release
	scripts/churn.sh

# certbound's release bootstrap and Authlete's Python Authorizer (authlete
# 1.3.0 under awslambdaric, pins in scripts/bench-compare-requirements.txt,
# venv in target/bench-compare-venv) under the same Runtime API emulator and
# Authlete double: cold start, warm latency, peak RSS, AS calls; a Markdown table.
BENCH_COMPARE_FLAGS ?=
bench-compare: lambda-build
	python3 scripts/bench_compare.py --bin target/lambda/certbound/bootstrap $(BENCH_COMPARE_FLAGS)

load: release
	scripts/load.sh

stack-up: deps release
	scripts/stack-up.sh

stack-down:
	scripts/stack-down.sh

clean:
	-scripts/stack-down.sh
	$(CARGO) clean
	rm -rf .stack
