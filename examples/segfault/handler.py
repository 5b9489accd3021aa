"""Crashes with SIGSEGV by reading address 0 (a real fault: pid 1 of a namespace ignores self-sent signals)."""

import ctypes


def handler(event, context):
    return ctypes.string_at(0)
