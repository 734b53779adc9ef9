"""How long the tests that existed at a given commit take now (issue 12's "the whole suite is no slower").

Reads a pytest JUnit XML (``PYTEST_ADDOPTS=--junitxml=OUT.xml bash .ci/run``) and sums the times of the test
functions that were defined in tests/test_*.py at COMMIT (parametrized cases summed under their function).

    python benchmarks/suite_time.py 1007f59 OUT.xml
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


def main(argv: list[str]) -> int:
    commit, xml_path = argv
    then = test_functions_at(commit)
    per_module: dict[str, float] = defaultdict(float)
    seen, total = set(), 0.0
    for case in ET.parse(xml_path).iter("testcase"):
        key = (case.get("classname", "").split(".")[-1], case.get("name", "").split("[")[0])
        seconds = float(case.get("time", 0))
        total += seconds
        if key in then:
            per_module[key[0]] += seconds
            seen.add(key)
    print(f"test functions at {commit}: {len(then)}; in this run: {len(seen)}; gone or renamed: {len(then - seen)}")
    print(f"their time now: {sum(per_module.values()):.1f} s of the run's {total:.1f} s (sums of test times, setup included)")
    for module, seconds in sorted(per_module.items(), key=lambda item: -item[1])[:10]:
        print(f"  {module}: {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
