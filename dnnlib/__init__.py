"""Small utilities shared by every script: EasyDict, URL opening with a download cache,
construction of objects by dotted name, logging to a file, and the user-error convention."""

from . import util
from .util import EasyDict, UserError, make_cache_dir_path

__all__ = ["util", "EasyDict", "UserError", "make_cache_dir_path"]
