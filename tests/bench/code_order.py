#!/usr/bin/env python3
"""The functions a sidecar runs, hottest first: the linker's symbol ordering file for weft-proxy.

  code_order.py BINARY CALLGRIND_OUT... > proxy/code-order.txt

Reads callgrind profiles (recorded with --demangle=no --compress-strings=no, as
tests/bench/code_order.sh does) and prints the mangled name of every function of BINARY that ran,
by its own instruction count, largest first. The linker places these functions first and
together (`--symbol-ordering-file`, proxy/build.rs), so the code a running sidecar touches is a
few contiguous megabytes instead of pages scattered over the whole text: the kernel maps code in
64 KiB runs around each page a sidecar touches, and with the functions scattered it had mapped
most of the binary.
"""

import sys
from collections import Counter


def self_costs(path, binary_name):
    """{function: instructions spent in it} for the functions of the object `binary_name`."""
    costs = Counter()
    objects = {}
    current_object = None
    current_function = None
    skip_next_cost = False
    with open(path, errors="replace") as profile:
        for line in profile:
            if line.startswith("ob="):
                current_object = line[3:].strip()
            elif line.startswith("fl=") or line.startswith("fi=") or line.startswith("fe="):
                continue
            elif line.startswith("fn="):
                current_function = line[3:].strip()
                objects[current_function] = current_object
            elif line.startswith("calls="):
                skip_next_cost = True  # the next line is the callee's inclusive cost
            elif line[:1].isdigit() or line[:1] in "+-*":
                if skip_next_cost:
                    skip_next_cost = False
                    continue
                fields = line.split()
                if current_function and len(fields) >= 2:
                    costs[current_function] += int(fields[1])
    return Counter(
        {
            function: cost
            for function, cost in costs.items()
            if (objects.get(function) or "").endswith(binary_name)
        }
    )


def main():
    binary, profiles = sys.argv[1], sys.argv[2:]
    binary_name = "/" + binary.rsplit("/", 1)[-1]
    total = Counter()
    for path in profiles:
        total.update(self_costs(path, binary_name))
    for function, _ in sorted(total.items(), key=lambda item: (-item[1], item[0])):
        # callgrind marks recursion ('2) and unnamed code (addresses): neither is a symbol.
        if "'" in function or function.startswith("0x"):
            continue
        print(function)


if __name__ == "__main__":
    main()
