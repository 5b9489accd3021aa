#!/usr/bin/env python3
"""Plots soak's samples (bench/soak.cc writes them as TSV) as a PNG of three
panels over time: calls per second with p99 latency, thatchd's RSS, and its
open fds. Standard library only: the PNG is drawn pixel by pixel.

Usage: soak_plot.py SAMPLES.tsv OUT.png
"""

import struct
import sys
import zlib

WIDTH, PANEL, MARGIN = 800, 180, 40
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]

# 3x5 digits for axis labels.
DIGITS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001001001001", "8": "111101111101111",
    "9": "111101111001111", ".": "000000000000010",
}


class Canvas:
    def __init__(self, width, height):
        self.width, self.height = width, height
        self.pixels = bytearray(b"\xff" * (width * height * 3))

    def dot(self, x, y, colour):
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i:i + 3] = bytes(colour)

    def line(self, x0, y0, x1, y1, colour):
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for s in range(steps + 1):
            self.dot(round(x0 + (x1 - x0) * s / steps), round(y0 + (y1 - y0) * s / steps), colour)

    def text(self, x, y, text, colour=(0, 0, 0)):
        for ch in text:
            glyph = DIGITS.get(ch)
            if glyph:
                for i, bit in enumerate(glyph):
                    if bit == "1":
                        self.dot(x + i % 3, y + i // 3, colour)
            x += 4

    def png(self):
        rows = b"".join(b"\x00" + bytes(self.pixels[y * self.width * 3:(y + 1) * self.width * 3])
                        for y in range(self.height))

        def chunk(kind, data):
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
                chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def panel(canvas, top, xs, series):
    """Draws each series (values, colour) scaled to its own maximum."""
    left, right, bottom = MARGIN, WIDTH - 10, top + PANEL - 20
    canvas.line(left, top, left, bottom, (0, 0, 0))
    canvas.line(left, bottom, right, bottom, (0, 0, 0))
    span = max(xs[-1] - xs[0], 1e-9) if xs else 1
    for n, (values, colour) in enumerate(series):
        most = max(values) or 1
        canvas.text(2, top + 8 * n, f"{most:.0f}", colour)
        points = [(left + (x - xs[0]) / span * (right - left), bottom - v / most * (bottom - top))
                  for x, v in zip(xs, values)]
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            canvas.line(round(x0), round(y0), round(x1), round(y1), colour)
    if xs:
        canvas.text(left, bottom + 6, "0")
        canvas.text(right - 16, bottom + 6, f"{xs[-1]:.0f}")


def main():
    rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])][1:]
    columns = list(zip(*[[float(v) for v in row] for row in rows])) or [[]] * 6
    xs, calls, _refused, p99, rss, fds = columns
    canvas = Canvas(WIDTH, 3 * PANEL)
    panel(canvas, 10, xs, [(calls, COLOURS[0]), (p99, COLOURS[1])])
    panel(canvas, 10 + PANEL, xs, [(rss, COLOURS[2])])
    panel(canvas, 10 + 2 * PANEL, xs, [(fds, COLOURS[3])])
    with open(sys.argv[2], "wb") as out:
        out.write(canvas.png())


if __name__ == "__main__":
    main()
