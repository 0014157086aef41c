"""`python run.py [PATH] [KEY=VALUE ...]` in a checkout: the `w2m2w` command (w2m2w/cli.py), for those without it installed."""

from __future__ import annotations

from w2m2w.cli import main
from w2m2w.run.runner import shard_of  # noqa: F401 - run.shard_of, as before

if __name__ == "__main__":
    main()
