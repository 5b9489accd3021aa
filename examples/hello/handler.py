"""The smallest thatch function: Lambda-style handler(event, context)."""

import json


def handler(event, context):
    name = (event or {}).get("name", "world")
    return {"greeting": f"hello, {name}"}


if __name__ == "__main__":
    # Until thatchd serves functions, `make demo` runs this file directly in
    # a one-shot sandbox.
    print(json.dumps(handler({"name": "thatch"}, None)))
