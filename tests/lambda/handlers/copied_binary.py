"""Runs a binary copied to /tmp, as handlers that ship tools do."""

import os
import shutil
import subprocess


def handler(event, context):
    shutil.copy("/usr/bin/echo", "/tmp/e")
    os.chmod("/tmp/e", 0o755)
    done = subprocess.run(["/tmp/e", *event["words"]], capture_output=True, text=True)
    return {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
