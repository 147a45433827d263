"""Encrypting while writing: whole objects, and multipart uploads part by part.

A multipart upload gets plaintext parts, maybe out of order and from several threads, and
passes each on sealed, at once, with no buffering across parts. That needs two things of the
caller (the upload pipeline does both: its parts are whole MiB, all the same size but the
last, see ``core.layout.part_size``): every part but the last is a whole number of chunks,
and every part but the last has the same size, so part ``n`` starts at chunk
``(n - 1) x part 1's size / chunk size`` (parts after the first wait until part 1 arrived to
know it). Violations are ``ValueError`` (the caller aborts the upload).

Which part is the last is known only at ``complete``, yet the last chunk must be sealed as
final. A part shorter than part 1, or not whole chunks, is the last one: its last chunk is
sealed final (an empty one added when it is whole chunks). Parts of part 1's size go up at
once, not final; when the last part was one of them, ``complete`` adds one more part: the
empty final chunk (a 16-byte tag; S3 allows a small last part, and the one before it is at
least 5 MiB). Only a part 1 under 5 MiB is held back (sealed, not sent) until it is known
whether more follow, as it cannot be followed by that tiny part. Memory: a sealed copy of
each part being sent, at most two at once per store (``SealedBuffers``; more only while an
earlier part would otherwise wait behind later ones), on top of the pipeline's buffers.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bbr_orchestrator.adapters.encryption.format import TAG, Header, nonce
from bbr_orchestrator.core.layout import MIN_PART
from bbr_orchestrator.ports import MultipartUpload

FIRST_PART_WAIT = 300.0
"""Seconds a later part waits for part 1 (it is sent first; only a broken caller waits)."""


@dataclass(frozen=True)
class Sealer:
    """Seals the chunks of one object."""

    cipher: AESGCM
    header: Header
    aad: bytes

    @property
    def chunk_size(self) -> int:
        return self.header.chunk_size

    def sealed_size(self, plaintext: int, *, final: bool, with_header: bool) -> int:
        """Bytes :meth:`seal_into` writes for ``plaintext`` bytes (+16 reserved when not
        ``final``: room for an empty final chunk)."""
        chunks = plaintext // self.chunk_size + 1
        return (self.header.size if with_header else 0) + plaintext + TAG * chunks

    def seal_into(
        self, out: memoryview, data: memoryview, first: int, *, final: bool, with_header: bool
    ) -> int:
        """Seal ``data`` as chunks ``first, first + 1, ...`` into ``out``; returns the bytes
        written. With ``final`` the last chunk is sealed as the object's final one (short,
        maybe empty); without, ``data`` must be whole chunks."""
        cs = self.chunk_size
        full, tail = divmod(len(data), cs)
        if not final and tail:
            raise ValueError(f"{len(data)} bytes are not whole chunks of {cs}")
        at = 0
        if with_header:
            at = self.header.size
            out[:at] = self.header.raw
        for i in range(full + 1 if final else full):
            piece = data[i * cs : (i + 1) * cs]
            end = at + len(piece) + TAG
            last = final and i == full
            self.cipher.encrypt_into(nonce(first + i, last), piece, self.aad, out[at:end])
            at = end
        return at

    def seal_final_into(self, out: memoryview, index: int) -> None:
        """Write the empty final chunk ``index`` into ``out`` (16 bytes)."""
        self.cipher.encrypt_into(nonce(index, True), b"", self.aad, out[:TAG])

    def seal_object(self, data: bytes | memoryview) -> bytes:
        """A whole object: header and every chunk."""
        view = memoryview(data).cast("B")
        out = bytearray(self.sealed_size(len(view), final=True, with_header=True))
        self.seal_into(memoryview(out), view, 0, final=True, with_header=True)
        return bytes(out)


@dataclass
class _Sealed:
    """A sealed part in a pooled buffer: ``length`` bytes (a held part 1: room for 16 more)."""

    number: int
    buffer: bytearray
    length: int

    @property
    def body(self) -> memoryview:
        return memoryview(self.buffer)[: self.length]


class SealedBuffers:
    """Buffers for sealed parts, reused across the uploads of one store, at most ``limit`` in
    use at once (``take`` waits): the memory bound of encrypted uploads.

    A sealed copy exists beside the pipeline's plaintext buffer until the part is sent, so
    ``limit`` x part size is what encryption adds (2 x 16 MiB by default; more parts in flight
    did not upload faster on a 2-core machine, where the CPUs are the limit). Each buffer is
    exactly one part's sealed size (a whole buffer goes to S3 as it is, where a slice of a
    larger one is read and copied in small blocks); free ones of the latest size are kept, as
    fresh 16 MiB buffers cost page faults (AES-GCM runs twice as fast into warm memory).

    A part never waits only behind later ones: when every slot is held by parts ranked after
    the one asking (later parts of its upload, or parts of later uploads), it gets a buffer
    beyond the limit. Some stores take an upload's parts only in order (``rclone serve s3``
    holds part n until part n - 1 is written); had parts 3 and 4 taken both slots before part
    2 asked, they would wait for part 2 and part 2 for their slots, for ever. Only then, when
    the uploading threads' parts came out of order, does the limit give (at most one buffer
    per thread); while an earlier part holds a slot, its end frees one. A slot given back
    goes to the earliest part waiting, so parts queued for slots take them in order.
    """

    def __init__(self, limit: int = 2) -> None:
        self._limit = limit
        self._changed = threading.Condition()
        self._holders: dict[int, tuple[int, int]] = {}
        """id of each buffer in use -> the rank of the part it holds."""
        self._waiting: list[tuple[int, int]] = []
        self._free: list[bytearray] = []
        self._uploads = itertools.count()

    def new_upload(self) -> int:
        """A serial number for an upload: its parts rank after every earlier upload's."""
        return next(self._uploads)

    def take(self, size: int, rank: tuple[int, int] = (0, 0)) -> bytearray:
        """A buffer of ``size`` bytes for the part ranked ``rank`` (upload serial, part
        number). Waits while ``limit`` are in use, unless every holder ranks after it; a slot
        given back goes to the lowest-ranked part waiting."""
        with self._changed:
            self._waiting.append(rank)
            try:
                self._changed.wait_for(lambda: self._may_take(rank))
            finally:
                self._waiting.remove(rank)
            kept = [i for i, b in enumerate(self._free) if len(b) == size]
            if kept:
                buffer = self._free.pop(kept[0])
            else:
                self._free.clear()  # other sizes: dropped, so never more than ``limit`` exist
                buffer = bytearray(size)
            self._holders[id(buffer)] = rank
            self._changed.notify_all()  # the next lowest waiting part may take a slot now
        return buffer

    def _may_take(self, rank: tuple[int, int]) -> bool:
        if all(held > rank for held in self._holders.values()):
            return True  # nothing held, or only by parts that may be waiting for this one
        return len(self._holders) < self._limit and rank <= min(self._waiting)

    def give(self, buffer: bytearray) -> None:
        with self._changed:
            del self._holders[id(buffer)]
            self._free = [b for b in self._free if len(b) == len(buffer)]
            if len(self._free) + len(self._holders) < self._limit:
                self._free.append(buffer)
            self._changed.notify_all()


class EncryptingUpload:
    """A ``MultipartUpload`` that seals every part on its way to ``inner`` (see the module).

    Sealed parts go into ``buffers`` (shared by the store's uploads, see ``SealedBuffers``)."""

    def __init__(
        self,
        inner: MultipartUpload,
        sealer: Sealer,
        hold_below: int = MIN_PART,
        buffers: SealedBuffers | None = None,
    ) -> None:
        self.key = inner.key
        self._inner = inner
        self._sealer = sealer
        self._hold_below = hold_below
        self._lock = threading.Lock()
        self._first_seen = threading.Event()
        self._first_size = 0
        self._sizes: dict[int, int] = {}
        self._final: int | None = None
        self._held: _Sealed | None = None
        self._buffers = buffers or SealedBuffers()
        self._serial = self._buffers.new_upload()

    def upload_part(self, number: int, data: memoryview | bytes) -> None:
        view = memoryview(data).cast("B")
        cs = self._sealer.chunk_size
        if number < 1:
            raise ValueError(f"part numbers start at 1, got {number}")
        if number == 1:
            self._first_size = len(view)
            self._first_seen.set()
        elif not self._first_seen.wait(FIRST_PART_WAIT):
            raise ValueError(f"part {number} of {self.key}: part 1 never came")
        elif self._first_size % cs:
            raise ValueError(f"{self.key}: part 1 is not whole {cs}-byte chunks, yet more follow")
        elif len(view) > self._first_size:
            raise ValueError(f"{self.key}: part {number} is larger than part 1")
        # A part shorter than part 1 is the last one; so is a part that is not whole chunks.
        final = len(view) % cs != 0 or (number > 1 and len(view) < self._first_size)
        first = (number - 1) * self._first_size // cs
        header = number == 1
        size = self._sealer.sealed_size(len(view), final=final, with_header=header)
        if not final and not (number == 1 and len(view) < self._hold_below):
            size -= TAG  # no room kept for a final chunk: the buffer is exactly the body
        buffer = self._buffers.take(size, (self._serial, number))
        try:
            length = self._sealer.seal_into(
                memoryview(buffer), view, first, final=final, with_header=header
            )
            send = self._register(_Sealed(number, buffer, length), len(view), final)
        except BaseException:
            self._buffers.give(buffer)
            raise
        for sealed in send:
            try:
                self._inner.upload_part(sealed.number, sealed.body)
            finally:
                self._buffers.give(sealed.buffer)

    def _register(self, sealed: _Sealed, size: int, final: bool) -> list[_Sealed]:
        """Record the part; returns what to send now (this part, and part 1 when it was held
        and turns out not to be the only one)."""
        number = sealed.number
        with self._lock:
            if number in self._sizes:
                raise ValueError(f"{self.key}: part {number} sent twice")
            if self._final is not None and number > self._final:
                raise ValueError(f"{self.key}: part {number} after the last part")
            if final and number < max(self._sizes, default=0):
                raise ValueError(f"{self.key}: short part {number} is not the last part")
            alone = not self._sizes
            self._sizes[number] = size
            if final:
                self._final = number
            send = [sealed]
            if alone and number == 1 and not final and size < self._hold_below:
                send, self._held = [], sealed  # maybe the only part: then it must end final
            elif number > 1 and self._held is not None:
                send, self._held = [self._held, sealed], None
            return send

    def complete(self) -> None:
        with self._lock:
            sizes, held, final = dict(self._sizes), self._held, self._final
            self._held = None
        try:
            self._complete(sizes, held, final)
        finally:
            if held is not None:
                self._buffers.give(held.buffer)

    def _complete(self, sizes: dict[int, int], held: _Sealed | None, final: int | None) -> None:
        if not sizes:  # an empty object: the header and an empty final chunk
            self._inner.upload_part(1, memoryview(self._sealer.seal_object(b"")))
            self._inner.complete()
            return
        last = max(sizes)
        if sorted(sizes) != list(range(1, last + 1)):
            raise ValueError(f"{self.key}: parts {sorted(sizes)} are not 1 .. {last}")
        if final is None:  # every part was whole chunks of part 1's size: add the final chunk
            index = last * sizes[1] // self._sealer.chunk_size
            if held is not None:  # part 1 alone, small: the final chunk goes at its end
                self._sealer.seal_final_into(memoryview(held.buffer)[held.length :], index)
                held.length += TAG
                self._inner.upload_part(1, held.body)
            else:  # after a part of at least 5 MiB, as S3 wants
                tail = bytearray(TAG)
                self._sealer.seal_final_into(memoryview(tail), index)
                self._inner.upload_part(last + 1, memoryview(tail))
        self._inner.complete()

    def abort(self) -> None:
        with self._lock:
            held, self._held = self._held, None
        if held is not None:
            self._buffers.give(held.buffer)
        self._inner.abort()
