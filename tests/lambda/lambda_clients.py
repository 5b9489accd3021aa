"""Debian's AWS clients, unmodified, pointed at a test thatchd: the aws CLI
(/usr/bin/aws, run as a subprocess) and boto3; and the function zips the
tests deploy with them, built from the handlers in handlers/.
"""

import io
import json
import os
import re
import subprocess
import zipfile

import boto3
import botocore.config

HANDLERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "handlers")
AWS = "/usr/bin/aws"
ROLE = "arn:aws:iam::000000000000:role/any"  # required by the clients, unused by thatch


def function_zip(handler, extra_files=None):
    """A function's code: handlers/<handler>.py, and `extra_files` (name: bytes or str)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(os.path.join(HANDLERS, handler + ".py"), handler + ".py")
        for name, data in (extra_files or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def boto3_client(daemon, key, **config):
    """A boto3 Lambda client for `daemon`, signing with `key`; no retries, so
    that what the test asserts is the first answer."""
    return boto3.client(
        "lambda",
        endpoint_url=daemon.endpoint,
        region_name=daemon.region,
        aws_access_key_id=key.id,
        aws_secret_access_key=key.secret,
        config=botocore.config.Config(retries={"max_attempts": 0}, read_timeout=300, **config),
    )


def error_code(client_error):
    return client_error.response["Error"]["Code"]


def http_status(response_or_error):
    response = getattr(response_or_error, "response", response_or_error)
    return response["ResponseMetadata"]["HTTPStatusCode"]


class CliError(Exception):
    """The aws CLI failed; `code` is the service's error code it printed."""

    def __init__(self, code, stderr):
        super().__init__(f"aws failed ({code}): {stderr}")
        self.code = code
        self.stderr = stderr


class Cli:
    """/usr/bin/aws lambda ... against `daemon`, signing with `key`, in an
    environment of its own: no configuration files, no pager, one attempt."""

    def __init__(self, daemon, key, home):
        self.daemon = daemon
        self.key = key
        self.home = home

    def env(self):
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": self.home,
            "LANG": "C.UTF-8",
            "AWS_ACCESS_KEY_ID": self.key.id,
            "AWS_SECRET_ACCESS_KEY": self.key.secret,
            "AWS_DEFAULT_REGION": self.daemon.region,
            "AWS_CONFIG_FILE": os.path.join(self.home, "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(self.home, "no-credentials"),
            "AWS_PAGER": "",
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_RETRY_MODE": "standard",
        }

    def start(self, *args, sign=True):
        """Starts `aws lambda ARGS`, to run beside others: each call costs the
        CLI a second of CPU to start, most of a test's time on a busy machine."""
        command = [AWS, "--endpoint-url", self.daemon.endpoint, "--output", "json"]
        command += [] if sign else ["--no-sign-request"]
        # The guard is the CLI's own read timeout (300 s for invoke), not ours.
        process = subprocess.Popen(
            command + ["lambda", *args],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return CliCall(process)

    def __call__(self, *args, sign=True):
        """Runs `aws lambda ARGS`: its JSON output (None if it printed none), or raises CliError."""
        return self.start(*args, sign=sign).result()

    def start_invoke(self, function, payload, outfile, *args):
        """Starts `aws lambda invoke`; its result() is (its JSON output, the
        payload it wrote to `outfile`)."""
        if isinstance(payload, bytes):
            with open(outfile + ".in", "wb") as f:
                f.write(payload)
            payload_args = ["--payload", "fileb://" + outfile + ".in"]
        else:
            payload_args = ["--cli-binary-format", "raw-in-base64-out", "--payload", json.dumps(payload)]
        call = self.start(
            "invoke", "--function-name", function, *payload_args, "--cli-read-timeout", "300", *args, outfile
        )
        call.outfile = outfile
        return call

    def invoke(self, function, payload, outfile, *args):
        """`aws lambda invoke`: (its JSON output, the payload it wrote to `outfile`)."""
        return self.start_invoke(function, payload, outfile, *args).result()


class CliCall:
    """A running `aws` command."""

    def __init__(self, process):
        self.process = process
        self.outfile = None  # invoke's

    def result(self):
        """Its JSON output (None if it printed none), with invoke's payload; or raises CliError."""
        stdout, stderr = self.process.communicate()
        if self.process.returncode != 0:
            match = re.search(r"An error occurred \((\w+)\)", stderr)
            raise CliError(match.group(1) if match else None, stderr)
        output = json.loads(stdout) if stdout.strip() else None
        if self.outfile is None:
            return output
        with open(self.outfile, "rb") as f:
            return output, f.read()

    def close(self):
        """Ends it if it still runs (a test that failed before reading it)."""
        if self.process.returncode is None:
            self.process.kill()
            self.process.communicate()
