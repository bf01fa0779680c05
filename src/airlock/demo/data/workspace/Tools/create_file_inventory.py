#!/usr/bin/env python3
"""Write a CSV inventory (path, bytes, modified, sha256) of every file under a folder.

Usage: python Tools/create_file_inventory.py "projects/<Case>" inventory.csv
"""

import csv
import datetime as dt
import hashlib
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    root, out = Path(argv[1]), Path(argv[2])
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "bytes", "modified", "sha256"])
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            stat = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            modified = dt.datetime.fromtimestamp(stat.st_mtime).isoformat(timespec="seconds")
            writer.writerow([path.relative_to(root).as_posix(), stat.st_size, modified, digest])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
