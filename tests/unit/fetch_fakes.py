"""In-memory fakes for the restore download path: a jumpbox filesystem and a readable store."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping, Sequence

from bbr_orchestrator.errors import (
    ObjectNotFound,
    StorageUnavailable,
    TransferInterrupted,
)
from bbr_orchestrator.ports import CancelToken, LineSink, StoredObject


class FakeWriter:
    """A WriteStream into ``box.files[path]``; breaks after ``fail_after`` bytes if given."""

    def __init__(self, box: FakeJumpbox, path: str, fail_after: int | None) -> None:
        self.box, self.path, self.fail_after = box, path, fail_after
        self.state = "open"
        box.files[path] = b""

    def write(self, data: memoryview | bytes) -> None:
        assert self.state == "open", "write after close/abort"
        chunk = bytes(data)
        if self.fail_after is not None:
            room = self.fail_after - len(self.box.files[self.path])
            if len(chunk) > room:
                self.box.files[self.path] += chunk[: max(room, 0)]
                self.state = "broken"
                raise TransferInterrupted(self.box.host, self.path, None, "connection reset")
        self.box.files[self.path] += chunk

    def close(self) -> None:
        if self.state == "open":
            self.state = "closed"

    def abort(self) -> None:
        if self.state == "open":
            self.state = "aborted"


class FakeJumpbox:
    """A Jumpbox over dicts: directories, files, modes; answers ``mkdir -p`` and ``rm -rf``."""

    host = "jumpbox.test"

    def __init__(self, write_failures: Sequence[int] = ()) -> None:
        self.dirs: dict[str, int] = {"/": 0o755}
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, int] = {}
        self.write_failures = list(write_failures)
        """Each opened writer takes the next entry: it breaks after that many bytes."""
        self.writers: list[FakeWriter] = []
        self.calls: list[tuple[str, ...]] = []
        self.rm_status = 0

    def run(
        self,
        argv: Sequence[str],
        *,
        on_line: LineSink,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        cancel: CancelToken | None = None,
    ) -> int:
        assert timeout is not None, "every remote command has a timeout"
        self.calls.append(tuple(argv))
        if argv[:4] == ("mkdir", "-p", "-m", "0700"):
            path = argv[4]
            while path not in self.dirs:
                self.dirs[path] = 0o700 if path == argv[4] else 0o755
                path = posixpath.dirname(path)
            return 0
        if argv[:2] == ("rm", "-rf"):
            if self.rm_status:
                on_line("stderr", "rm: Permission denied")  # type: ignore[arg-type]
                return self.rm_status
            gone = argv[2]
            for table in (self.dirs, self.files):
                for path in [p for p in table if p == gone or p.startswith(gone + "/")]:
                    del table[path]
            return 0
        raise AssertionError(f"unexpected command {argv}")

    def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        self.files[path], self.modes[path] = data, mode

    def close(self) -> None:
        return None

    def open_read(self, path: str, offset: int = 0) -> object:
        raise NotImplementedError("the download path never reads from the jumpbox")

    def open_write(self, path: str, mode: int = 0o600) -> FakeWriter:
        assert posixpath.dirname(path) in self.dirs, f"no directory for {path}"
        fail_after = self.write_failures.pop(0) if self.write_failures else None
        writer = FakeWriter(self, path, fail_after)
        self.modes[path] = mode
        self.writers.append(writer)
        return writer

    def list_files(self, directory: str) -> list[tuple[str, int]]:
        return sorted(
            (posixpath.basename(p), len(data))
            for p, data in self.files.items()
            if posixpath.dirname(p) == directory
        )

    def list_dirs(self, directory: str) -> list[str]:
        return sorted(posixpath.basename(p) for p in self.dirs if posixpath.dirname(p) == directory)

    def sha256(self, path: str) -> str:
        raise NotImplementedError

    def under(self, directory: str) -> dict[str, bytes]:
        """The files in ``directory`` by name."""
        return {posixpath.basename(p): d for p, d in self.files.items() if p.startswith(directory)}


class FakeReadStream:
    """An object's bytes from an offset, at most ``chunk`` per read; records each buffer size."""

    def __init__(self, store: FakeReadStore, key: str, data: bytes, offset: int) -> None:
        self.store, self.key, self.data, self.pos = store, key, data, offset

    def readinto(self, buffer: memoryview) -> int:
        self.store.buffer_sizes.append(len(buffer))
        if self.pos >= self.store.fail_read_at.get(self.key, len(self.data) + 1):
            raise StorageUnavailable("bucket", self.key, "injected 503", attempts=3)
        end = min(len(self.data), self.pos + len(buffer), self.pos + self.store.chunk)
        n = end - self.pos
        buffer[:n] = self.data[self.pos : end]
        self.pos = end
        return n

    def close(self) -> None:
        self.store.closed += 1


class FakeReadStore:
    """The reading half of the ObjectStore port over a dict; ``served`` overrides the bytes a
    GET returns (HEAD still reports the stored size), to fake an object changing underneath."""

    def __init__(self, objects: dict[str, bytes] | None = None, chunk: int = 100_000) -> None:
        self.objects = dict(objects or {})
        self.served: dict[str, bytes] = {}
        self.fail_read_at: dict[str, int] = {}
        self.chunk = chunk
        self.reads: list[tuple[str, int]] = []
        self.buffer_sizes: list[int] = []
        self.closed = 0

    def head(self, key: str) -> StoredObject | None:
        data = self.objects.get(key)
        return None if data is None else StoredObject(key, len(data))

    def open_read(self, key: str, offset: int = 0) -> FakeReadStream:
        self.reads.append((key, offset))
        if key not in self.objects:
            raise ObjectNotFound("bucket", key, "NoSuchKey")
        return FakeReadStream(self, key, self.served.get(key, self.objects[key]), offset)

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = bytes(data)

    def list(self, prefix: str) -> Iterator[StoredObject]:
        return iter(
            StoredObject(k, len(v)) for k, v in sorted(self.objects.items()) if k.startswith(prefix)
        )


class SecondConnection:
    """Another connection to the same fake jumpbox (what ``connect()`` returns); counts close."""

    def __init__(self, box: FakeJumpbox) -> None:
        self.box, self.closed = box, 0

    def open_write(self, path: str, mode: int = 0o600) -> FakeWriter:
        return self.box.open_write(path, mode)

    def close(self) -> None:
        self.closed += 1
