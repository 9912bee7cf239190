"""`python -m harness.proxy ARGS` = `stormbench proxy ARGS`, without needing the console script on PATH."""
import sys

from commands.cli import main

sys.exit(main(["proxy", *sys.argv[1:]]))
