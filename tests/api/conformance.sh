#!/usr/bin/env bash
# The REST API against its own OpenAPI document, by an independent checker: schemathesis
# generates thousands of requests from /api/openapi.json (valid and invalid, single calls and
# chains that use one answer's ids in the next request) against the real server with the demo
# library, and fails on any 5xx, any status the document does not list, any content type or
# body that does not match it. The seed is fixed so that a failure is reproducible; change it
# (SCHEMATHESIS_SEED) to explore further.
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=${STREAM_SERVER_BIN:-target/debug/stream-server}
[[ -x $bin ]] || { echo "no server binary at $bin (cargo build first)" >&2; exit 1; }

venv=target/schemathesis-venv
if [[ ! -x $venv/bin/schemathesis ]] || ! cmp -s tests/api/requirements.txt "$venv/requirements.txt"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/api/requirements.txt
  cp tests/api/requirements.txt "$venv/requirements.txt"
fi

data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" serve --demo --bind "127.0.0.1:$port" --data-dir "$data" --web-dir "$data/none" \
  >"$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { cat "$data/server.log" >&2; exit 1; }
  sleep 0.1
done

# One worker: schemathesis' workers are threads, and CPython 3.11 (Debian's) tracks the AST
# constructor's recursion depth per interpreter, not per call (cpython gh-106905, fixed in
# 3.12): two threads in `ast.parse` at once (Hypothesis parses sources to describe lambdas)
# can die with "AST constructor recursion depth mismatch", a tool failure, not an API one.
# `/api/ws` is a WebSocket handshake, tested by the WebSocket suites.
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/api/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --exclude-path-regex '/api/ws$' \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-50}" \
  --seed "${SCHEMATHESIS_SEED:-20261130}" \
  --workers 1 \
  --no-color
