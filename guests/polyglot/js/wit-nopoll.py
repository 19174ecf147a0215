#!/usr/bin/env python3
"""Copies Hive's WIT to OUT without anything that uses a WASI resource.

jco's QuickJS backend (componentize-qjs) rejects `hive:process` interfaces
that `use wasi:io/poll.{pollable}` or `wasi:io/streams`: "instance export
`pollable` has the wrong type: mismatched resource types". This drops those
`use`s and every function whose signature mentions `pollable`, `input-stream`
or `output-stream` (with its doc comment and attributes), so child-qjs.js can
be built. A guest built against this subset still links against the full host.

Usage: wit-nopoll.py WIT_DIR OUT_DIR
"""
import re
import shutil
import sys

src, out = sys.argv[1], sys.argv[2]
shutil.rmtree(out, ignore_errors=True)
shutil.copytree(src, out)
RESOURCE = re.compile(r"\b(pollable|input-stream|output-stream)\b")
for name in ("process.wit", "child-process.wit"):
    path = f"{out}/{name}"
    kept, pending = [], []  # pending: doc comments / attributes before an item
    for line in open(path).read().splitlines(keepends=True):
        s = line.strip()
        if s.startswith("use wasi:io/"):
            continue
        if s.startswith("///") or s.startswith("@"):
            pending.append(line)
            continue
        if ": func(" in s and RESOURCE.search(s):
            pending = []  # drop the function and its docs
            continue
        kept += pending + [line]
        pending = []
    open(path, "w").write("".join(kept + pending))
