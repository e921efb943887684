"""Hash passwords as a login storm's hashing threads do, and nothing else: the floor a
storm sets for every other request (``phases.Benchmark.status_under_login``).

    python -m bench.hashers SECONDS --threads N

N threads (the API's workers times their ``USERS_HASHING_THREADS``), each at the API's
``USERS_HASHING_NICENESS``, hash with the API's argon2 settings for SECONDS: no event
loop, no database, no login code. Run it with the API's environment.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from fastapi_server.apps.users.passwords import hash_password_sync, yield_to_requests
from fastapi_server.apps.users.settings import get_users_settings


def hash_until(deadline: float, niceness: int) -> None:
    """Hash one password after another until ``deadline`` (``time.monotonic()``), at the
    priority the API gives its hashing threads (the same call)."""
    yield_to_requests(niceness)
    while time.monotonic() < deadline:
        hash_password_sync("bench-floor-password")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seconds", type=float)
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args()
    niceness = get_users_settings().hashing_niceness
    deadline = time.monotonic() + args.seconds
    threads = [
        threading.Thread(target=hash_until, args=(deadline, niceness), daemon=True)
        for _ in range(args.threads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
