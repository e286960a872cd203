# heapscope demo workload: a program with a heap problem.
#
# It imports modules, keeps a cache that grows, churns short-lived buffers in between, and so
# chops its free memory into pieces, until a modest allocation fails while plenty is "free".
# It prints micropython.mem_info(1) after each step; heapscope reads those dumps.
import gc, micropython, time


def dump(label):
    print("== " + label)
    micropython.mem_info(1)


dump("start")
import json

dump("import json")
import re

dump("import re")
import collections

dump("import collections")

# Each round receives eight messages and keeps every second one: the dropped ones leave holes
# between the kept ones, like the teeth of a comb. Messages grow a little each round, so the
# holes of earlier rounds no longer fit them. Free memory piles up in holes too small to use.
kept = []
rounds = 0
while True:
    rounds += 1
    free = gc.mem_free()
    try:
        for i in range(8):
            message = bytearray(256 + 64 * rounds)
            if i % 2 == 0:
                kept.append(message)
        message = None
    except MemoryError as e:
        print("MemoryError: %s (gc.mem_free() said %d)" % (e, free))
        dump("after MemoryError")
        # Start over, as a watchdog reset would.
        kept = []
        message = None
        rounds = 0
        gc.collect()
        dump("messages dropped")
        time.sleep_ms(1500)
        continue
    gc.collect()
    dump("round %d: %d messages kept" % (rounds, len(kept)))
    time.sleep_ms(700)
