# The two commands of the README's quick start, and their parts.
.PHONY: run test web web-test rust-test api-test lint

CARGO ?= cargo

## Build everything and run the server with the demo library and the web player on :8082.
run: web
	$(CARGO) run --release -- serve --demo

## The whole test suite: Rust unit and integration tests (ffmpeg as judge), web unit tests,
## the end-to-end player test in headless Chromium, and the REST API against its OpenAPI
## document (schemathesis).
test: rust-test web-test api-test

rust-test:
	@command -v ffmpeg >/dev/null || { echo "ffmpeg is needed by the tests: apt-get install -y ffmpeg"; exit 1; }
	$(CARGO) test --workspace

web:
	cd web && npm ci --no-audit --no-fund && npm run build

web-test: web
	@test -x /usr/bin/chromium || { echo "Chromium is needed by the e2e test: apt-get install -y chromium"; exit 1; }
	$(CARGO) test --no-run --test it  # builds target/debug/stream-server with the same features as the tests
	cd web && npm test && STREAM_SERVER_BIN=$(CURDIR)/target/debug/stream-server npm run test:e2e

api-test:
	$(CARGO) test --no-run --test it  # the server binary, built as for the tests (no second build)
	tests/api/conformance.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
