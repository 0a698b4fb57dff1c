"""A bounded memory of rendered texts, kept per process."""

import threading
from collections.abc import Callable
from typing import Any


class Kept:
    """A process's bounded memory, shared by its threads: at most `count()` entries of at most
    `chars()` characters in all (`size` measures one; one larger than `largest()` is not
    kept), the first kept going first. A process needing more renders again, nothing worse."""

    def __init__(
        self,
        count: Callable[[], int],
        chars: Callable[[], int],
        largest: Callable[[], int],
        size: Callable[[Any], int],
    ) -> None:
        self._count, self._limit, self._largest, self._size = count, chars, largest, size
        self._kept: dict[Any, Any] = {}
        self._chars = 0
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        return self._kept.get(key)

    def put(self, key: Any, value: Any) -> None:
        size = self._size(value)
        if size > self._largest():
            return
        with self._lock:
            old = self._kept.pop(key, None)
            if old is not None:
                self._chars -= self._size(old)
            self._kept[key] = value
            self._chars += size
            while len(self._kept) > self._count() or self._chars > self._limit():
                self._chars -= self._size(self._kept.pop(next(iter(self._kept))))

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self._chars = 0

    def put_all(self, items: list[tuple[Any, Any]]) -> None:
        for key, value in items:
            self.put(key, value)
