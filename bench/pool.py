"""Benchmark LDW pooling against MaxPool2d, ConvTranspose2d, clone and pytorch_wavelets.

Usage: ``python bench/pool.py [--repeats N] [--threads T] [--quick]`` (same as ``ldwseg bench``).
"""

from ldwseg.cli import app

if __name__ == "__main__":
    app(["bench", *__import__("sys").argv[1:]], prog_name="bench/pool.py")
