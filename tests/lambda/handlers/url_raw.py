"""A raw function URL handler (tests/lambda/test_function_urls.py): what it
answers is chosen by the request's path, and /echo answers the event it got."""

import base64
import json


def handler(event, context):
    path = event.get("rawPath") or event.get("path")
    if path == "/echo":
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(event)}
    if path == "/bare-object":
        return {"answer": 42, "path": path}
    if path == "/bare-value":
        return [1, "two", None]
    if path == "/bare-string":
        return "just text"
    if path == "/shaped":
        return {
            "statusCode": 201,
            "headers": {"Content-Type": "text/plain; charset=utf-8", "X-Number": 7},
            "multiValueHeaders": {"X-Many": ["one", "two"]},
            "cookies": ["session=abc; Path=/; HttpOnly", "theme=dark"],
            "body": "créé",
        }
    if path == "/binary":
        data = bytes(range(256)) * 4
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/octet-stream"},
            "body": base64.b64encode(data).decode(),
            "isBase64Encoded": True,
        }
    if path == "/malformed-status":
        return {"statusCode": "two hundred", "body": "x"}
    if path == "/malformed-base64":
        return {"statusCode": 200, "body": "!!not base64!!", "isBase64Encoded": True}
    if path == "/fail":
        raise ValueError("the secret database password is hunter2")
    return {"statusCode": 404, "body": "no route " + path}
