"""Text as Python handlers take it for granted on Lambda, whose runtime
runs in a UTF-8 locale: a file opened without an encoding, the environment,
a subprocess's text."""

import os
import subprocess


def handler(event, context):
    with open("greeting.txt") as f:
        from_file = f.read()
    echoed = subprocess.run(["/usr/bin/echo", from_file], capture_output=True, text=True, check=True).stdout
    return {"file": from_file, "environment": os.environ["GREETING"], "echoed": echoed}
