"""Run pytest and refuse a run that collected no tests (pytest's exit code 5)."""

from __future__ import annotations

import sys

import pytest

NO_TESTS_COLLECTED = 5


def main() -> int:
    code = int(pytest.main(sys.argv[1:]))
    if code == NO_TESTS_COLLECTED:
        print("error: pytest collected no tests; refusing to call that a pass", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
