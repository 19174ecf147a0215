#!/usr/bin/env bash
# Vendors the WASI 0.2 WIT that wasmtime-wasi ships into wit/deps, so the host
# (bindgen!) and guests (wit-bindgen) see the exact same WASI version the host
# implements. Never hand-edit wit/deps; re-run this after bumping wasmtime.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(cargo metadata --format-version 1 --locked 2>/dev/null |
    python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="wasmtime-wasi"))')
src="$(dirname "$version")/src/p2/wit/deps"
rm -rf wit/deps
mkdir -p wit/deps
for f in "$src"/*.wit; do
    name=$(basename "$f" .wit)
    mkdir -p "wit/deps/$name"
    cp "$f" "wit/deps/$name/$name.wit"
done
# wasi:http (the requests the host parses) from wasmtime-wasi-http, which
# ships the same WASI version.
http=$(cargo metadata --format-version 1 --locked 2>/dev/null |
    python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="wasmtime-wasi-http"))')
mkdir -p wit/deps/http
cp "$(dirname "$http")/wit/deps/http.wit" wit/deps/http/http.wit
echo "vendored $(ls wit/deps | tr '\n' ' ')from $src"
