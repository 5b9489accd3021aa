"""Imports numpy at module level (the python3.11-numpy runtime pre-imports it)."""

import numpy


def handler(event, context):
    return {"sum": int(numpy.arange(10).sum()), "version": numpy.__version__}
