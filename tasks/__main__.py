"""``python -m tasks ensure-bucket [BUCKET]``: wait for S3 (up to 2 minutes), then create the bucket.

The one-shot initialisation step of docker-compose (service ``s3-init``).
"""

from __future__ import annotations

import sys
import time

from tasks.s3 import ensure_bucket
from translator.errors import NonRetryableError
from translator.text import shorten

USAGE = "usage: python -m tasks ensure-bucket [BUCKET]"


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "ensure-bucket" or len(argv) > 2:
        print(USAGE, file=sys.stderr)
        return 2
    deadline = time.monotonic() + 120
    while True:
        try:
            print(ensure_bucket(argv[1] if len(argv) > 1 else None))
            return 0
        except NonRetryableError as exc:  # refused (no right to create it, name taken): waiting cannot help
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # S3 not up yet: retry until the deadline
            if time.monotonic() > deadline:
                print(f"error: S3 not ready after 120 s: {shorten(str(exc), quote=False)}", file=sys.stderr)
                return 1
            time.sleep(2)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
