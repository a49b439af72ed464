#!/usr/bin/env python3
"""What a process's resident memory is made of, from /proc/PID/smaps and /proc/PID/task.

  rss_breakdown.py PID [NAME] [--mappings]

Prints one line per part, in KiB (Rss, and Pss for the shared parts):
  code      the executable's own mappings (text, read-only data, relocated data)
  libraries shared libraries (libc, libm, the dynamic loader, libgcc)
  heap      brk heap and anonymous mappings that are not thread stacks (the allocator's memory)
  stacks    the main thread's stack and each thread's stack (anonymous mappings below a guard
            page, which is how glibc's pthread_create lays them out)
  other     vdso, vvar and the rest
and how much of it is transparent huge pages (AnonHugePages),
and the threads by name (with --mappings, also each file mapping with its private dirty part:
relocated data, for one), so a thread nobody expected (and its stack and allocator state) shows.
"""

import os
import sys
from collections import Counter


def mappings(pid):
    """(header fields, {field: KiB}) for each mapping of pid."""
    current = None
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            first = line.split(None, 1)[0]
            if "-" in first and not first.endswith(":"):
                if current:
                    yield current
                fields = line.split()
                current = (fields, {})
            elif first.endswith(":") and current is not None:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "kB":
                    current[1][parts[0][:-1]] = int(parts[1])
    if current:
        yield current


def breakdown(pid, show_mappings=False):
    exe = os.readlink(f"/proc/{pid}/exe")
    parts = Counter()
    pss = Counter()
    huge = 0
    previous_was_guard = False
    for fields, sizes in mappings(pid):
        perms = fields[1]
        path = fields[5] if len(fields) > 5 else ""
        rss = sizes.get("Rss", 0)
        if path == exe:
            part = "code"
        elif ".so" in path:
            part = "libraries"
        elif path == "[stack]":
            part = "stacks"
        elif path == "" and perms.startswith("rw") and previous_was_guard:
            part = "stacks"
        elif path in ("", "[heap]"):
            part = "heap"
        else:
            part = "other"
        previous_was_guard = path == "" and perms.startswith("---")
        if show_mappings and part in ("code", "libraries") and rss:
            size = sizes.get("Size", 0)
            dirty = sizes.get("Private_Dirty", 0)
            print(f"    {perms} {os.path.basename(path)}: size {size}, rss {rss}, dirty {dirty}")
        parts[part] += rss
        pss[part] += sizes.get("Pss", 0)
        huge += sizes.get("AnonHugePages", 0)
    return parts, pss, huge


def threads(pid):
    names = Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as comm:
            names[comm.read().strip()] += 1
    return names


def main():
    args = [a for a in sys.argv[1:] if a != "--mappings"]
    pid = args[0]
    name = args[1] if len(args) > 1 else pid
    parts, pss, huge = breakdown(pid, "--mappings" in sys.argv)
    total = sum(parts.values())
    line = ", ".join(
        f"{part} {parts[part]} (pss {pss[part]})"
        for part in ("code", "libraries", "heap", "stacks", "other")
    )
    print(f"{name}: rss {total} KiB: {line}; transparent huge pages {huge}")
    print(f"{name}: threads: " + ", ".join(f"{n} x{c}" for n, c in sorted(threads(pid).items())))


if __name__ == "__main__":
    main()
