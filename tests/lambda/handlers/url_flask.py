"""A Flask app behind a function URL (tests/lambda/test_function_urls.py),
run through a small WSGI-to-event adapter, as adapters such as Zappa's run
WSGI apps on Lambda: the event (payload format 2.0, or 1.0) becomes a WSGI
environ, the app's answer the response document."""

import base64
import hashlib
import io
import sys
import urllib.parse

from flask import Flask, jsonify, make_response, redirect, request

app = Flask(__name__)


@app.get("/items/<int:item_id>")
def get_item(item_id):
    return jsonify(id=item_id, q=request.args.get("q"), tags=request.args.getlist("tag"))


@app.post("/items")
def create_item():
    item = request.get_json()
    return jsonify(created=item, method=request.method), 201


@app.post("/form")
def form():
    return f"hello {request.form['name']}, you are {request.form['age']}"


@app.get("/login")
def login():
    response = make_response("logged in")
    response.set_cookie("session", "s3cr3t", httponly=True)
    response.set_cookie("lang", "fr")
    return response


@app.get("/whoami")
def whoami():
    return jsonify(cookies=request.cookies.to_dict())


@app.get("/old")
def old():
    return redirect("/items/1?q=moved", code=302)


@app.post("/upload")
def upload():
    data = request.get_data()
    response = make_response(data[::-1])
    response.headers["Content-Type"] = "image/png"
    response.headers["X-Sha256"] = hashlib.sha256(data).hexdigest()
    return response


@app.post("/size")
def size():
    return jsonify(length=len(request.get_data()), sha256=hashlib.sha256(request.get_data()).hexdigest())


TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml")


def environ_of(event):
    if event.get("version") == "2.0":
        method = event["requestContext"]["http"]["method"]
        path = urllib.parse.unquote(event["rawPath"])
        query = event.get("rawQueryString", "")
        headers = dict(event.get("headers") or {})
        if event.get("cookies"):
            headers["cookie"] = "; ".join(event["cookies"])
        source_ip = event["requestContext"]["http"]["sourceIp"]
    else:
        method = event["httpMethod"]
        path = event["path"]
        query = urllib.parse.urlencode(event.get("multiValueQueryStringParameters") or {}, doseq=True)
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        source_ip = event["requestContext"]["identity"]["sourceIp"]
    body = event.get("body") or ""
    body = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    host = headers.get("host", "localhost")
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": host.split(":")[0],
        "SERVER_PORT": host.split(":")[1] if ":" in host else "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": source_ip,
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": headers.get("content-type", ""),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers.items():
        key = "HTTP_" + name.upper().replace("-", "_")
        if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
            environ[key] = value
    return environ


def handler(event, context):
    started = {}

    def start_response(status, headers, exc_info=None):
        started["status"] = int(status.split()[0])
        started["headers"] = headers

    chunks = app(environ_of(event), start_response)
    try:
        body = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    headers, cookies = {}, []
    for name, value in started["headers"]:
        if name.lower() == "set-cookie":
            cookies.append(value)
        elif name in headers:
            headers[name] += "," + value
        else:
            headers[name] = value
    content_type = headers.get("Content-Type", "")
    text = content_type.startswith(TEXT_TYPES)
    answer = {
        "statusCode": started["status"],
        "headers": headers,
        "body": body.decode() if text else base64.b64encode(body).decode(),
        "isBase64Encoded": not text,
    }
    if event.get("version") == "2.0":
        answer["cookies"] = cookies
    else:
        answer["multiValueHeaders"] = {"Set-Cookie": cookies} if cookies else {}
    return answer
