#!/usr/bin/env python3
"""Signs a webhook body and sends it, with Python's standard library only.

    examples/send.py '{"message_id":"m1",...}'   the string, byte for byte (UTF-8)
    examples/send.py @body.json                  the file, byte for byte (newlines kept)
    examples/send.py @-                          standard input

The key is $SECRET, else WEBHOOK_SECRET from the env file `make run` reads (.env, else
.env.example); the target is $URL (default http://localhost:8000/webhook). Prints the answer's
body; exits 0 on a 2xx, 1 otherwise.
"""
import hashlib
import hmac
import os
import pathlib
import sys
import urllib.error
import urllib.request


def secret() -> str:
    if os.environ.get("SECRET"):
        return os.environ["SECRET"]
    root = pathlib.Path(__file__).resolve().parent.parent
    env_file = pathlib.Path(os.environ.get("ENV_FILE", root / ".env"))
    if not env_file.is_file():
        env_file = root / ".env.example"
    for line in env_file.read_text().splitlines():
        if line.startswith("WEBHOOK_SECRET="):
            return line.removeprefix("WEBHOOK_SECRET=")
    sys.exit(f"no secret: set SECRET=... or WEBHOOK_SECRET in {env_file}")


def main() -> int:
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} BODY | @FILE | @-")
    arg = sys.argv[1]
    if arg == "@-":
        body = sys.stdin.buffer.read()
    elif arg.startswith("@"):
        body = pathlib.Path(arg[1:]).read_bytes()
    else:
        body = arg.encode()
    key = secret().encode()
    sig = hmac.new(key, body, hashlib.sha256).hexdigest()
    url = os.environ.get("URL", "http://localhost:8000/webhook")
    req = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "X-Signature": sig},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:
            print(answer.read().decode())
            return 0
    except urllib.error.HTTPError as answer:
        print(answer.read().decode())
        print(f"HTTP {answer.code}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
