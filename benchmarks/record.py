"""Run an ``rnnkit`` command (or any command) and keep its output as a results file.

    python benchmarks/record.py demo --json-output /tmp/demo/results.json -- \\
        rnnkit demo --out /tmp/demo
    python benchmarks/record.py bench --json-output /tmp/bench.json -- \\
        rnnkit bench --json /tmp/bench.json

The command's printed output is echoed as it comes and stored as ``stdout`` (lines); with
``--json-output PATH`` the JSON file the command wrote is stored as ``data``. The file lands in
``benchmarks/results/NAME.json`` with the commit, date, machine and command line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from results import write_results


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        raise SystemExit("usage: record.py NAME [--json-output PATH] -- COMMAND ...")
    split = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--json-output", type=Path, default=None,
                        help="a JSON file the command writes, stored as 'data'")
    args = parser.parse_args(argv[:split])
    command = argv[split + 1:]
    lines = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as process:
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line.rstrip("\n"))
    if process.returncode != 0:
        raise SystemExit(f"the command failed with exit code {process.returncode}")
    results = {"stdout": lines}
    if args.json_output is not None:
        results["data"] = json.loads(args.json_output.read_text(encoding="utf-8"))
    path = write_results(args.name, results, command=command)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
