"""Docker engines that pull: where they are (`model`), how they are started (`provision`) and
how a tag is pulled with them (`pull`)."""

from matrix.engines.model import Engine, connect
from matrix.engines.pull import pull_many, pull_one

__all__ = ["Engine", "connect", "pull_many", "pull_one"]
