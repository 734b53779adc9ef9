"""How long the tests that existed at a given commit take now (issue 12's "the whole suite is no slower").

Reads a pytest JUnit XML (``PYTEST_ADDOPTS=--junitxml=OUT.xml bash .ci/run``) and sums the times of the test
functions that were defined in tests/test_*.py at COMMIT (parametrized cases summed under their function).

    python benchmarks/suite_time.py 1007f59 OUT.xml
    python benchmarks/suite_time.py 1007f59 OUT.xml --then THEN.xml

``--then``: a JUnit XML of the suite *at COMMIT*, run on the same machine (a worktree of COMMIT,
``PYTHONPATH=WORKTREE/src python -m pytest --junitxml=THEN.xml``), so then and now are compared
per module and per test under the same conditions, not against a number from another day.
"""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET  # our own pytest output, not untrusted XML
from collections import defaultdict


def test_functions_at(commit: str) -> set[tuple[str, str]]:
    """(module, function) of every test function in tests/test_*.py at ``commit`` (git show)."""
    names = subprocess.run(["git", "ls-tree", "--name-only", commit, "tests/"], capture_output=True, text=True, check=True)
    found = set()
    for path in names.stdout.split():
        if re.fullmatch(r"tests/test_\w+\.py", path):
            source = subprocess.run(["git", "show", f"{commit}:{path}"], capture_output=True, text=True, check=True).stdout
            module = path[len("tests/") : -len(".py")]
            found.update((module, name) for name in re.findall(r"^(?:    )?def (test_\w+)\(", source, flags=re.M))
    return found


def per_test(xml_path: str) -> dict[tuple[str, str], float]:
    """(module, function) -> seconds summed over its parametrized cases (setup and teardown included)."""
    times: dict[tuple[str, str], float] = defaultdict(float)
    for case in ET.parse(xml_path).iter("testcase"):
        key = (case.get("classname", "").split(".")[-1], case.get("name", "").split("[")[0])
        times[key] += float(case.get("time", 0))
    return times


def main(argv: list[str]) -> int:
    then_xml = None
    if "--then" in argv:
        i = argv.index("--then")
        then_xml = argv[i + 1]
        argv = argv[:i] + argv[i + 2 :]
    commit, xml_path = argv
    then = test_functions_at(commit)
    now_times = per_test(xml_path)
    total = sum(now_times.values())
    per_module: dict[str, float] = defaultdict(float)
    seen = set()
    for key, seconds in now_times.items():
        if key in then:
            per_module[key[0]] += seconds
            seen.add(key)
    print(f"test functions at {commit}: {len(then)}; in this run: {len(seen)}; gone or renamed: {len(then - seen)}")
    print(f"their time now: {sum(per_module.values()):.1f} s of the run's {total:.1f} s (sums of test times, setup included)")
    if then_xml is None:
        for module, seconds in sorted(per_module.items(), key=lambda item: -item[1])[:10]:
            print(f"  {module}: {seconds:.1f} s")
        return 0
    old_times = {key: t for key, t in per_test(then_xml).items() if key in then}
    old_module: dict[str, float] = defaultdict(float)
    for key, seconds in old_times.items():
        old_module[key[0]] += seconds
    print(f"the same functions at {commit} ({then_xml}): {sum(old_module.values()):.1f} s")
    print("  module: then -> now (s)")
    for module in sorted(set(per_module) | set(old_module), key=lambda m: -(per_module[m] - old_module[m]))[:12]:
        print(
            f"  {module}: {old_module[module]:.1f} -> {per_module[module]:.1f} ({per_module[module] - old_module[module]:+.1f})"
        )
    print("  largest changes per test function: then -> now (s)")
    changes = sorted(seen, key=lambda key: -abs(now_times[key] - old_times.get(key, 0.0)))[:15]
    for key in changes:
        print(f"  {key[0]}::{key[1]}: {old_times.get(key, 0.0):.1f} -> {now_times[key]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
