"""Runs the Python anchor parser (pi-mst's micropython-memory-profiler, `HeapFrame` in
rendering_tools/mem_usage_parser/frame_parser.py; not part of this repository) over a text file
of mem_info(1) dumps, the way its own capture reader feeds it: one list of lines per dump.

usage: python3 anchor_parse.py PATH/TO/frame_parser.py TEXT_FILE
prints: <CPU seconds> <dumps read>, <dumps the anchor refused>   (reading, splitting and HeapFrame
for every dump, timed here; a dump the anchor raises on counts as refused)
"""

import importlib.util
import sys
import time


def load(path):
    spec = importlib.util.spec_from_file_location("frame_parser", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dumps(lines):
    """Each dump: its stack:/mem: lines, GC lines and layout rows, as the anchor expects them."""
    i, n = 0, len(lines)
    while i < n:
        if not lines[i].startswith("GC: total:"):
            i += 1
            continue
        start = i
        if start > 0 and lines[start - 1].startswith("stack:"):
            start -= 1
        if start > 0 and lines[start - 1].startswith("mem:"):
            start -= 1
        j = i + 2
        while j < n and (lines[j].startswith("GC memory layout") or lines[j][:1] in "0123456789abcdef" and lines[j][8:9] == ":" or "lines all free" in lines[j]):
            j += 1
        yield lines[start:j]
        i = j


def main():
    module = load(sys.argv[1])
    t = time.thread_time()
    with open(sys.argv[2], encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    count = refused = 0
    for heap in dumps(lines):
        count += 1
        try:
            module.HeapFrame(0, heap)
        except Exception:
            refused += 1
    print(time.thread_time() - t, f"{count}, {refused}")


main()
