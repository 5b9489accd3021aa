"""Crashes with SIGSEGV by reading address 0: a real fault, as pid 1 ignores signals it sends itself."""

import ctypes


def handler(event, context):
    return ctypes.string_at(0)
