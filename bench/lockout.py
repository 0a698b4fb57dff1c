"""The attacks issue 14 describes, against a running Beacon: what each attempt is answered.

    .venv/bin/python bench/lockout.py http://localhost:8000 admin <admin password> [--proxied]

Without --proxied (Beacon started with TRUSTED_PROXY_HOPS=0, as `make run` is): 120 wrong
passwords for the user from one address, then the right one. With --proxied (Beacon started
with TRUSTED_PROXY_HOPS=1, as behind nginx): 20 wrong passwords from 20 addresses in
X-Forwarded-For, then the right one from a fresh address, then another username from another
address (which must still get the form). Each attempt fetches the form for its CSRF token.
It locks the account for LOGIN_COOLOFF_MINUTES: use a throw-away `make run`
(BEACON_VAR_DIR=$(mktemp -d)).
"""

import argparse
import collections
import re

import httpx


def attempt(base: str, username: str, password: str, address: str = "") -> httpx.Response:
    headers = {"X-Forwarded-For": address} if address else {}
    with httpx.Client(headers=headers) as client:
        form = client.get(base + "/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        data = {"username": username, "password": password, "next": "/admin/"}
        if token:
            data["csrfmiddlewaretoken"] = token.group(1)
        return client.post(base + "/admin/login/", data=data)


def wrong_passwords(base: str, username: str, count: int, *, rotate: bool) -> None:
    answers: collections.Counter[int] = collections.Counter()
    first_lock = None
    for n in range(count):
        address = f"203.0.113.{n % 250}" if rotate else ""
        status = attempt(base, username, f"wrong-{n}", address).status_code
        answers[status] += 1
        if status == 429 and first_lock is None:
            first_lock = n + 1
    where = f"{count} addresses" if rotate else "one address"
    print(f"{count} wrong passwords from {where}: {dict(answers)}; first 429 at {first_lock}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("username")
    parser.add_argument("password")
    parser.add_argument("--proxied", action="store_true")
    args = parser.parse_args()
    if args.proxied:
        wrong_passwords(args.base, args.username, 20, rotate=True)
        right = attempt(args.base, args.username, args.password, "198.51.100.7")
        print(f"the right password from a fresh address: {right.status_code}")
        other = attempt(args.base, "someone-else", "wrong", "198.51.100.8")
        print(f"another username from another address: {other.status_code} (200: the form)")
    else:
        wrong_passwords(args.base, args.username, 120, rotate=False)
        right = attempt(args.base, args.username, args.password)
        retry = right.headers.get("Retry-After")
        print(f"the right password during the lock-out: {right.status_code}, Retry-After {retry}")


if __name__ == "__main__":
    main()
