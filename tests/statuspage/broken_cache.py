"""A cache backend standing in for a Redis that is down, when no Redis is configured."""

from django.core.cache.backends.base import BaseCache


class UnreachableCache(BaseCache):
    def __init__(self, location, params):
        super().__init__(params)

    def _fail(self, *args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    add = get = set = delete = touch = incr = clear = has_key = _fail
    get_many = set_many = delete_many = _fail
