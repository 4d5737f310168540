"""Schemathesis hook for `make schemathesis`: signs every generated POST /webhook body with the
test secret, so fuzzing reaches validation and storage instead of stopping at 401."""

import hashlib
import hmac
import json

import schemathesis
from schemathesis.core import NOT_SET

SECRET = b"testsecret"


@schemathesis.hook
def before_call(context, case, **kwargs):
    if case.path != "/webhook" or case.body is NOT_SET:
        return
    raw = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
    case.body = raw
    headers = dict(case.headers or {})
    headers["X-Signature"] = hmac.new(SECRET, raw, hashlib.sha256).hexdigest()
    case.headers = headers
