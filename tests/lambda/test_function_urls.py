"""Function URLs (docs/triggers.md#function-urls) end to end: a real thatchd, URLs
made with boto3 and the aws CLI (CreateFunctionUrlConfig & co), requests
sent with http.client as a browser or curl would send them. A Flask app
runs behind a URL through a WSGI-to-event adapter written in
handlers/url_flask.py; raw handlers (handlers/url_raw.py) pin the response
mapping. Each test asserts what the client got and, through /echo, what the
function received.

Run from the repository root (as root, with build/bin built):
    /usr/bin/python3 -m unittest tests/lambda/test_function_urls.py
"""

import base64
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.parse

import botocore.auth
import botocore.awsrequest
import botocore.credentials
from botocore.exceptions import ClientError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lambda_clients import ROLE, Cli, CliError, boto3_client, error_code, function_zip, http_status  # noqa: E402
from thatchd_process import (  # noqa: E402
    FULL_KEY,
    GUARD_SECONDS,
    GUARDED_KEY,
    INVOKE_KEY,
    READ_KEY,
    THATCHD,
    TestDaemon,
)

THATCH = os.path.join(os.path.dirname(THATCHD), "thatch")

DIST_PACKAGES = "/usr/lib/python3/dist-packages"
# Flask and what it imports, copied into the function's code: the sandbox
# sees the host's /usr, but not Debian's dist-packages on its sys.path.
FLASK_PACKAGES = ("flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous", "click", "blinker")
PAYLOAD_LIMIT = 256 << 10  # [limits] payload of this suite's thatchd: an over-limit body fits the socket buffers


def flask_files():
    files = {}
    for package in FLASK_PACKAGES:
        top = os.path.join(DIST_PACKAGES, package)
        for directory, subdirectories, names in os.walk(top):
            subdirectories[:] = [d for d in subdirectories if d != "__pycache__"]
            for name in names:
                path = os.path.join(directory, name)
                with open(path, "rb") as f:
                    files[os.path.relpath(path, DIST_PACKAGES)] = f.read()
    return files


def url_id_of(function_url):
    """The id in http://ID.lambda-url.REGION.localhost:PORT/."""
    return urllib.parse.urlsplit(function_url).hostname.split(".")[0]


class Answer:
    def __init__(self, response, body):
        self.status = response.status
        self.headers = response.headers
        self.body = body

    def json(self):
        return json.loads(self.body)


class FunctionUrlTestCase(unittest.TestCase):
    TABLES = f"[limits]\npayload = {PAYLOAD_LIMIT}\n"
    REGION = "eu-west-1"

    @classmethod
    def setUpClass(cls):
        cls.scratch = tempfile.mkdtemp(prefix="function-urls-test-")
        cls.addClassCleanup(shutil.rmtree, cls.scratch, ignore_errors=True)
        cls.daemon = TestDaemon(cls.TABLES, "", cls.REGION)
        cls.addClassCleanup(cls.daemon.close)
        cls.boto = boto3_client(cls.daemon, FULL_KEY)
        cls.addClassCleanup(cls.boto.close)

    @classmethod
    def deploy(cls, name, handler, extra_files=None):
        cls.boto.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Handler=handler + ".handler",
            Role=ROLE,
            Code={"ZipFile": function_zip(handler, extra_files)},
        )

    @classmethod
    def create_url(cls, name, auth="NONE", payload_format=None):
        """CreateFunctionUrlConfig with boto3, or signed by hand for thatch's
        PayloadFormatVersion extension (boto3 sends only AWS's fields)."""
        if payload_format is None:
            return cls.boto.create_function_url_config(FunctionName=name, AuthType=auth)
        status, body = cls.signed_api_request(
            "POST",
            f"/2021-10-31/functions/{name}/url",
            json.dumps({"AuthType": auth, "PayloadFormatVersion": payload_format}).encode(),
        )
        assert status == 201, (status, body)
        return json.loads(body)

    @classmethod
    def signed_api_request(cls, method, path, body=b"", key=FULL_KEY):
        url = cls.daemon.endpoint + path
        request = botocore.awsrequest.AWSRequest(method=method, url=url, data=body)
        credentials = botocore.credentials.Credentials(key.id, key.secret)
        botocore.auth.SigV4Auth(credentials, "lambda", cls.daemon.region).add_auth(request)
        connection = http.client.HTTPConnection("127.0.0.1", cls.daemon.port, timeout=GUARD_SECONDS)
        try:
            connection.request(method, path, body=body, headers=dict(request.headers))
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def connect(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=GUARD_SECONDS)
        self.addCleanup(connection.close)
        return connection

    def host_of(self, url_id):
        return f"{url_id}.lambda-url.{self.REGION}.localhost:{self.daemon.port}"

    def request(self, url_id, method, target, body=None, headers=None, via="host", connection=None):
        """`method target` to the URL `url_id`, addressed by its Host (as curl
        sends to http://ID.lambda-url.REGION.localhost:PORT/) or by the
        /lambda-url/ID path prefix."""
        connection = connection or self.connect()
        headers = dict(headers or {})
        if via == "host":
            headers["Host"] = self.host_of(url_id)
        else:
            target = f"/lambda-url/{url_id}{target}"
        connection.request(method, target, body=body, headers=headers)
        response = connection.getresponse()
        return Answer(response, response.read())


class FlaskAppTest(FunctionUrlTestCase):
    """A Flask app behind a URL, through the WSGI adapter."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.deploy("webapp", "url_flask", flask_files())
        cls.url = cls.create_url("webapp")["FunctionUrl"]
        cls.url_id = url_id_of(cls.url)

    def test_route_with_path_parameter_and_query(self):
        for via in ("host", "path"):
            with self.subTest(via=via):
                answer = self.request(self.url_id, "GET", "/items/42?q=red%20shoes&tag=a&tag=b", via=via)
                self.assertEqual(answer.status, 200, answer.body)
                self.assertEqual(answer.headers["Content-Type"], "application/json")
                self.assertEqual(answer.json(), {"id": 42, "q": "red shoes", "tags": ["a", "b"]})

    def test_json_in_and_out(self):
        item = {"name": "chaise", "price": 12.5, "tags": ["bois", "été"]}
        answer = self.request(
            self.url_id, "POST", "/items", json.dumps(item).encode(), {"Content-Type": "application/json"}
        )
        self.assertEqual(answer.status, 201, answer.body)
        self.assertEqual(answer.json(), {"created": item, "method": "POST"})

    def test_form_post(self):
        body = urllib.parse.urlencode({"name": "Zoë", "age": "7"}).encode()
        answer = self.request(
            self.url_id, "POST", "/form", body, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(answer.body.decode(), "hello Zoë, you are 7")

    def test_cookies_set_and_read(self):
        login = self.request(self.url_id, "GET", "/login")
        self.assertEqual(login.status, 200, login.body)
        set_cookies = login.headers.get_all("Set-Cookie")
        self.assertEqual(len(set_cookies), 2, set_cookies)
        self.assertTrue(set_cookies[0].startswith("session=s3cr3t"), set_cookies)
        self.assertIn("HttpOnly", set_cookies[0])
        self.assertTrue(set_cookies[1].startswith("lang=fr"), set_cookies)
        # Sent back as a browser does: one Cookie header.
        cookie = "; ".join(value.split(";")[0] for value in set_cookies)
        whoami = self.request(self.url_id, "GET", "/whoami", headers={"Cookie": cookie})
        self.assertEqual(whoami.json(), {"cookies": {"session": "s3cr3t", "lang": "fr"}})

    def test_redirect(self):
        answer = self.request(self.url_id, "GET", "/old")
        self.assertEqual(answer.status, 302)
        self.assertEqual(answer.headers["Location"], "/items/1?q=moved")

    def test_binary_upload_and_download(self):
        data = b"\x89PNG\r\n\x1a\n" + os.urandom(100_000)
        answer = self.request(self.url_id, "POST", "/upload", data, {"Content-Type": "image/png"})
        self.assertEqual(answer.status, 200, answer.body[:200])
        self.assertEqual(answer.headers["Content-Type"], "image/png")
        self.assertEqual(answer.headers["X-Sha256"], hashlib.sha256(data).hexdigest())
        self.assertEqual(answer.body, data[::-1])

    def test_flask_404(self):
        answer = self.request(self.url_id, "GET", "/no/such/page")
        self.assertEqual(answer.status, 404)
        self.assertIn(b"Not Found", answer.body)

    def test_large_body_near_the_limit_and_over_it(self):
        # The event holds the body and about a kilobyte besides: it must fit
        # the payload limit too.
        near = b"x" * (PAYLOAD_LIMIT - 8192)
        answer = self.request(self.url_id, "POST", "/size", near, {"Content-Type": "text/plain"})
        self.assertEqual(answer.status, 200, answer.body[:200])
        self.assertEqual(answer.json(), {"length": len(near), "sha256": hashlib.sha256(near).hexdigest()})
        over = b"x" * (PAYLOAD_LIMIT + 1)
        connection = self.connect()
        try:
            answer = self.request(self.url_id, "POST", "/size", over, {"Content-Type": "text/plain"},
                                  connection=connection)
        except (BrokenPipeError, ConnectionResetError):
            self.fail("thatchd closed the connection instead of answering 413")
        self.assertEqual(answer.status, 413)
        self.assertIn(b"Request must be smaller than", answer.body)

    def test_chunked_bodies_have_the_same_limits(self):
        def chunks(total):
            for _ in range(total // 4096):
                yield b"y" * 4096

        near = PAYLOAD_LIMIT - 8192
        answer = self.request(self.url_id, "POST", "/size", chunks(near), {"Content-Type": "text/plain"})
        self.assertEqual(answer.status, 200, answer.body[:200])
        self.assertEqual(answer.json()["length"], near)
        answer = self.request(
            self.url_id, "POST", "/size", chunks(PAYLOAD_LIMIT + 4096), {"Content-Type": "text/plain"}
        )
        self.assertEqual(answer.status, 413)

    def test_a_binary_body_counts_as_its_base64(self):
        # Under the limit as bytes, over it as the event's base64.
        data = os.urandom(PAYLOAD_LIMIT * 7 // 8)
        answer = self.request(self.url_id, "POST", "/upload", data, {"Content-Type": "image/png"})
        self.assertEqual(answer.status, 413)

    def test_head_has_the_gets_headers_and_no_body(self):
        connection = self.connect()
        get = self.request(self.url_id, "GET", "/items/7?q=z", connection=connection)
        head = self.request(self.url_id, "HEAD", "/items/7?q=z", connection=connection)
        self.assertEqual(head.status, 200)
        self.assertEqual(head.body, b"")
        self.assertEqual(head.headers["Content-Length"], str(len(get.body)))
        self.assertEqual(head.headers["Content-Type"], "application/json")
        # The connection is still in step: no stray body was sent after the HEAD.
        again = self.request(self.url_id, "GET", "/items/8", connection=connection)
        self.assertEqual(again.json()["id"], 8)

    def test_keep_alive(self):
        connection = self.connect()
        first = self.request(self.url_id, "GET", "/items/1", connection=connection)
        sock, local = connection.sock, connection.sock.getsockname()
        second = self.request(self.url_id, "GET", "/items/2", connection=connection)
        self.assertEqual((first.json()["id"], second.json()["id"]), (1, 2))
        # http.client opens a new socket only when the server closed the first.
        self.assertIs(connection.sock, sock)
        self.assertEqual(connection.sock.getsockname(), local)


class RawHandlerTest(FunctionUrlTestCase):
    """The response mapping, with handlers that answer documents directly."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.deploy("raw", "url_raw")
        cls.deploy("rawv1", "url_raw")
        cls.url_id = url_id_of(cls.create_url("raw")["FunctionUrl"])
        created = cls.create_url("rawv1", payload_format="1.0")
        cls.v1_document = created
        cls.v1_url_id = url_id_of(created["FunctionUrl"])

    def test_event_format_2(self):
        answer = self.request(
            self.url_id,
            "POST",
            "/echo?a=1&a=2&b=x%20y",
            b'{"k": "v"}',
            {"Content-Type": "application/json", "Cookie": "c1=v1; c2=v2", "X-Custom": "yes",
             "User-Agent": "tests/1"},
        )
        self.assertEqual(answer.status, 200, answer.body)
        event = answer.json()
        self.assertEqual(event["version"], "2.0")
        self.assertEqual(event["routeKey"], "$default")
        self.assertEqual(event["rawPath"], "/echo")
        self.assertEqual(event["rawQueryString"], "a=1&a=2&b=x%20y")
        self.assertEqual(event["queryStringParameters"], {"a": "1,2", "b": "x y"})
        self.assertEqual(event["cookies"], ["c1=v1", "c2=v2"])
        self.assertEqual(event["headers"]["x-custom"], "yes")
        self.assertNotIn("cookie", event["headers"])
        self.assertEqual(event["body"], '{"k": "v"}')
        self.assertFalse(event["isBase64Encoded"])
        context = event["requestContext"]
        self.assertEqual(context["apiId"], self.url_id)
        self.assertEqual(context["domainPrefix"], self.url_id)
        self.assertEqual(context["domainName"], f"{self.url_id}.lambda-url.{self.REGION}.localhost")
        self.assertEqual(context["http"], {"method": "POST", "path": "/echo", "protocol": "HTTP/1.1",
                                           "sourceIp": "127.0.0.1", "userAgent": "tests/1"})
        self.assertEqual(context["stage"], "$default")
        self.assertEqual(answer.headers["x-amzn-RequestId"], context["requestId"])

    def test_binary_request_body_is_base64(self):
        data = os.urandom(2000)
        answer = self.request(self.url_id, "PUT", "/echo", data, {"Content-Type": "application/octet-stream"})
        event = answer.json()
        self.assertTrue(event["isBase64Encoded"])
        self.assertEqual(base64.b64decode(event["body"]), data)

    def test_bare_values_are_json(self):
        for path, expected in (("/bare-object", {"answer": 42, "path": "/bare-object"}),
                               ("/bare-value", [1, "two", None]), ("/bare-string", "just text")):
            with self.subTest(path=path):
                answer = self.request(self.url_id, "GET", path)
                self.assertEqual(answer.status, 200)
                self.assertEqual(answer.headers["Content-Type"], "application/json")
                self.assertEqual(answer.json(), expected)

    def test_status_headers_cookies(self):
        answer = self.request(self.url_id, "GET", "/shaped")
        self.assertEqual(answer.status, 201)
        self.assertEqual(answer.headers["Content-Type"], "text/plain; charset=utf-8")
        self.assertEqual(answer.headers["X-Number"], "7")
        self.assertEqual(answer.headers.get_all("X-Many"), ["one", "two"])
        self.assertEqual(answer.headers.get_all("Set-Cookie"), ["session=abc; Path=/; HttpOnly", "theme=dark"])
        self.assertEqual(answer.body.decode(), "créé")

    def test_base64_response(self):
        answer = self.request(self.url_id, "GET", "/binary")
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.headers["Content-Type"], "application/octet-stream")
        self.assertEqual(answer.body, bytes(range(256)) * 4)

    def test_handler_exception_is_502_without_internals(self):
        answer = self.request(self.url_id, "GET", "/fail")
        self.assertEqual(answer.status, 502)
        self.assertEqual(answer.json(), {"Message": "Internal Server Error"})
        for leak in (b"hunter2", b"ValueError", b"Traceback", b"url_raw", b"/var/task"):
            self.assertNotIn(leak, answer.body)

    def test_malformed_answers_are_502(self):
        for path in ("/malformed-status", "/malformed-base64"):
            with self.subTest(path=path):
                answer = self.request(self.url_id, "GET", path)
                self.assertEqual(answer.status, 502)
                self.assertEqual(answer.json(), {"Message": "Internal Server Error"})

    def test_format_1(self):
        self.assertEqual(self.v1_document["PayloadFormatVersion"], "1.0")
        answer = self.request(self.v1_url_id, "GET", "/echo?a=1&a=2", headers={"X-Twice": "x"})
        self.assertEqual(answer.status, 200, answer.body)
        event = answer.json()
        self.assertEqual(event["version"], "1.0")
        self.assertEqual(event["httpMethod"], "GET")
        self.assertEqual(event["path"], "/echo")
        self.assertEqual(event["queryStringParameters"], {"a": "2"})
        self.assertEqual(event["multiValueQueryStringParameters"], {"a": ["1", "2"]})
        self.assertEqual(event["multiValueHeaders"]["X-Twice"], ["x"])
        self.assertIsNone(event["body"])
        self.assertIsNone(event["pathParameters"])
        self.assertEqual(event["requestContext"]["identity"]["sourceIp"], "127.0.0.1")
        # Format 1.0 takes only a statusCode document: a bare value is malformed.
        self.assertEqual(self.request(self.v1_url_id, "GET", "/bare-object").status, 502)

    def test_unknown_url_is_404(self):
        answer = self.request("0" * 32, "GET", "/")
        self.assertEqual(answer.status, 404)
        self.assertEqual(answer.json(), {"Message": "Not Found"})
        self.assertEqual(self.request("not-an-id", "GET", "/", via="path").status, 404)


class AuthTest(FunctionUrlTestCase):
    """An AWS_IAM URL takes requests signed by a key that may invoke the function."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.deploy("guarded", "url_raw")
        cls.url = cls.create_url("guarded", auth="AWS_IAM")["FunctionUrl"]
        cls.url_id = url_id_of(cls.url)

    def signed(self, key, method, target, body=b"", via="host", headers=None):
        host = self.host_of(self.url_id) if via == "host" else f"127.0.0.1:{self.daemon.port}"
        path = target if via == "host" else f"/lambda-url/{self.url_id}{target}"
        request = botocore.awsrequest.AWSRequest(
            method=method, url=f"http://{host}{path}", data=body, headers=headers or {}
        )
        credentials = botocore.credentials.Credentials(key.id, key.secret)
        botocore.auth.SigV4Auth(credentials, "lambda", self.REGION).add_auth(request)
        connection = self.connect()
        headers = dict(request.headers)
        headers["Host"] = host
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return Answer(response, response.read())

    def test_unsigned_is_403(self):
        answer = self.request(self.url_id, "GET", "/echo")
        self.assertEqual(answer.status, 403)
        self.assertEqual(answer.json(), {"Message": "Forbidden"})

    def test_signed_by_a_key_that_may_invoke(self):
        for key in (INVOKE_KEY, GUARDED_KEY):
            for via in ("host", "path"):
                with self.subTest(key=key.id, via=via):
                    answer = self.signed(
                        key, "POST", "/echo?x=1", b'{"signed": true}', via, {"Content-Type": "application/json"}
                    )
                    self.assertEqual(answer.status, 200, answer.body)
                    event = answer.json()
                    self.assertEqual(event["body"], '{"signed": true}')
                    self.assertEqual(event["requestContext"]["authorizer"]["iam"]["accessKey"], key.id)
                    self.assertEqual(event["rawPath"], "/echo")
                    self.assertEqual(event["queryStringParameters"], {"x": "1"})

    def test_signed_by_a_key_that_may_not_invoke_or_tampered(self):
        self.assertEqual(self.signed(READ_KEY, "GET", "/echo").status, 403)
        wrong = type(FULL_KEY)(FULL_KEY.id, "not the secret of this key at all", FULL_KEY.allow)
        self.assertEqual(self.signed(wrong, "GET", "/echo").status, 403)


class UrlConfigApiTest(FunctionUrlTestCase):
    """CreateFunctionUrlConfig, Get-, Update-, List-, Delete- with the aws CLI and boto3."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cli = Cli(cls.daemon, FULL_KEY, cls.scratch)
        cls.deploy("configured", "url_raw")
        cls.deploy("by-boto3", "url_raw")

    def arn(self, name):
        return f"arn:aws:lambda:{self.REGION}:000000000000:function:{name}"

    def test_aws_cli(self):
        created = self.cli("create-function-url-config", "--function-name", "configured", "--auth-type", "NONE")
        self.assertEqual(created["AuthType"], "NONE")
        self.assertEqual(created["FunctionArn"], self.arn("configured"))
        url = created["FunctionUrl"]
        self.assertRegex(url, rf"^http://[a-z0-9]{{32}}\.lambda-url\.{self.REGION}\.localhost:{self.daemon.port}/$")
        got = self.cli("get-function-url-config", "--function-name", "configured")
        self.assertEqual((got["FunctionUrl"], got["AuthType"]), (url, "NONE"))
        self.assertIn("LastModifiedTime", got)
        listed = self.cli("list-function-url-configs", "--function-name", "configured")
        self.assertEqual([c["FunctionUrl"] for c in listed["FunctionUrlConfigs"]], [url])
        with self.assertRaises(CliError) as again:
            self.cli("create-function-url-config", "--function-name", "configured", "--auth-type", "NONE")
        self.assertEqual(again.exception.code, "ResourceConflictException")
        # It serves.
        self.assertEqual(self.request(url_id_of(url), "GET", "/bare-value").json(), [1, "two", None])
        self.cli("delete-function-url-config", "--function-name", "configured")
        with self.assertRaises(CliError) as gone:
            self.cli("get-function-url-config", "--function-name", "configured")
        self.assertEqual(gone.exception.code, "ResourceNotFoundException")
        self.assertEqual(self.request(url_id_of(url), "GET", "/bare-value").status, 404)

    def test_boto3_update_keeps_the_url(self):
        created = self.boto.create_function_url_config(FunctionName="by-boto3", AuthType="NONE")
        self.assertEqual(http_status(created), 201)
        updated = self.boto.update_function_url_config(FunctionName="by-boto3", AuthType="AWS_IAM")
        self.assertEqual(updated["AuthType"], "AWS_IAM")
        self.assertEqual(updated["FunctionUrl"], created["FunctionUrl"])
        # Now unsigned requests are refused.
        self.assertEqual(self.request(url_id_of(created["FunctionUrl"]), "GET", "/echo").status, 403)
        listed = self.boto.list_function_url_configs(FunctionName="by-boto3")["FunctionUrlConfigs"]
        self.assertEqual([c["AuthType"] for c in listed], ["AWS_IAM"])
        self.boto.delete_function_url_config(FunctionName="by-boto3")
        self.assertEqual(self.boto.list_function_url_configs(FunctionName="by-boto3")["FunctionUrlConfigs"], [])

    def test_errors(self):
        with self.assertRaises(ClientError) as missing:
            self.boto.create_function_url_config(FunctionName="no-such-function", AuthType="NONE")
        self.assertEqual(error_code(missing.exception), "ResourceNotFoundException")
        with self.assertRaises(ClientError) as none:
            self.boto.get_function_url_config(FunctionName="by-boto3-none")
        self.assertEqual(error_code(none.exception), "ResourceNotFoundException")
        reader = boto3_client(self.daemon, READ_KEY)
        self.addCleanup(reader.close)
        with self.assertRaises(ClientError) as denied:
            reader.create_function_url_config(FunctionName="configured", AuthType="NONE")
        self.assertEqual(error_code(denied.exception), "AccessDeniedException")


class OperationsTest(FunctionUrlTestCase):
    """A URL made with the thatch CLI: its deliveries and failures counted,
    disabled and enabled, removed with its function."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.deploy("counted", "url_raw")

    def thatch(self, *args):
        done = subprocess.run(
            [THATCH, "--socket", self.daemon.socket, "--json", *args],
            capture_output=True,
            text=True,
            timeout=GUARD_SECONDS,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        return json.loads(done.stdout) if done.stdout.strip() else None

    def url_trigger(self):
        listed = self.thatch("trigger", "ls", "counted")
        triggers = listed["triggers"] if isinstance(listed, dict) else listed
        return next(t for t in triggers if t["id"] == "url-counted")

    def test_counted_disabled_enabled_removed(self):
        self.thatch("url", "create", "counted")
        url_id = self.url_trigger()["urlId"]
        self.assertEqual(self.request(url_id, "GET", "/bare-value").status, 200)
        self.assertEqual(self.request(url_id, "GET", "/fail").status, 502)
        self.assertEqual(self.request(url_id, "GET", "/malformed-status").status, 502)
        stats = self.url_trigger()["stats"]
        self.assertEqual((stats["deliveries"], stats["failures"]), (3, 2))
        self.assertNotIn("hunter2", stats["lastError"])
        self.thatch("trigger", "disable", "url-counted")
        disabled = self.request(url_id, "GET", "/bare-value")
        self.assertEqual((disabled.status, disabled.json()), (403, {"Message": "Forbidden"}))
        self.thatch("trigger", "enable", "url-counted")
        self.assertEqual(self.request(url_id, "GET", "/bare-value").status, 200)
        self.thatch("rm", "counted")
        self.assertEqual(self.request(url_id, "GET", "/bare-value").status, 404)


if __name__ == "__main__":
    unittest.main()
