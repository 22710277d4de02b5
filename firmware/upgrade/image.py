"""The firmware image format: a strict, canonical POSIX ustar archive.

Members, in this order and nothing else::

    manifest.json              canonical JSON (below); the Ed25519 signatures cover exactly these bytes
    signatures/<keyid>.sig     zero or more raw 64-byte Ed25519 signatures, sorted by key id
    payload/<path>             every file listed in the manifest, in manifest order (sorted by path)

The archive is uncompressed so that the same tree gives the same bytes on any build machine (zlib
versions differ in output) and so that stock ``tar`` and ``openssl`` can check it by hand. Every
header must be the canonical ustar header of its member, every padding byte zero and the file
exactly as long as the end-of-archive record says: a single flipped or missing byte anywhere is
found, whether tar itself would have noticed it or not.

Manifest fields: ``format`` (1), ``product``, ``version`` (dotted integers), ``build_time``,
``source_date_epoch``, ``boards`` (compatible board names), ``min_from_version``, ``python``,
``platform``, ``dependencies`` ("bundled" or "none"), ``files`` (path, size, sha256, mode) and the
optional ``trust`` ({"add": [{"pem", "comment"}], "revoke": [keyid]}) used for key rotation.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, Callable, Iterable, Iterator, Protocol

from firmware.upgrade.errors import UpgradeRefused

FORMAT = 1
PRODUCT = "openmeter"
MANIFEST_NAME = "manifest.json"
SIGNATURE_DIR = "signatures"
PAYLOAD_DIR = "payload"
BLOCK_BYTES = tarfile.BLOCKSIZE            # 512, POSIX.1-1988 ustar block
RECORD_BYTES = tarfile.RECORDSIZE          # 20 blocks; the archive is padded to a whole record
MAX_MANIFEST_BYTES = 16 * 1024 * 1024      # a manifest of ~100k files; anything larger is not ours
SIGNATURE_BYTES = 64                       # Ed25519 signature, RFC 8032 section 5.1.6
CHUNK_BYTES = 1 << 20
ENCODING = "utf-8"
FILE_MODES = (0o644, 0o755)
_ZERO_BLOCK = bytes(BLOCK_BYTES)
_KEYID_RE = re.compile(r"[0-9a-f]{16}")
_VERSION_RE = re.compile(r"(\d+(?:\.\d+){0,3})")


# --------------------------------------------------------------------------- versions


def parse_version(text: str) -> tuple[int, ...]:
    """``"1.2.3"`` -> ``(1, 2, 3)``; a local suffix (``"0.1.0+source"``) is ignored for ordering."""
    m = _VERSION_RE.fullmatch(text.split("+", 1)[0])
    if not m:
        raise ValueError(f"version {text!r} is not dotted integers such as 1.2.3")
    parts = tuple(int(p) for p in m.group(1).split("."))
    return parts + (0,) * (3 - len(parts)) if len(parts) < 3 else parts


def version_greater(a: str, b: str) -> bool:
    return parse_version(a) > parse_version(b)


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str
    mode: int = 0o644

    @property
    def member(self) -> str:
        return f"{PAYLOAD_DIR}/{self.path}"


@dataclass(frozen=True)
class Manifest:
    raw: bytes
    data: dict[str, Any]
    files: tuple[FileEntry, ...]

    @property
    def version(self) -> str:
        return str(self.data["version"])

    @property
    def boards(self) -> tuple[str, ...]:
        return tuple(self.data["boards"])

    @property
    def min_from_version(self) -> str:
        return str(self.data.get("min_from_version", "0.0.0"))

    @property
    def payload_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def trust_update(self) -> dict[str, Any]:
        return dict(self.data.get("trust") or {})

    @property
    def mtime(self) -> int:
        return int(self.data.get("source_date_epoch", 0))


def dump_manifest(data: dict[str, Any]) -> bytes:
    """The canonical bytes of a manifest: sorted keys, two-space indent, ASCII, final newline."""
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def check_relative_path(path: str) -> str:
    """A payload path must stay inside the slot: relative, no '..', no empty or dot parts."""
    p = PurePosixPath(path)
    if (not path or path.startswith("/") or "\\" in path or "\0" in path
            or any(part in ("", ".", "..") for part in path.split("/")) or p.is_absolute()):
        raise ValueError(f"path {path!r} is not a plain relative path")
    return path


def parse_manifest(raw: bytes) -> Manifest:
    def bad(why: str) -> UpgradeRefused:
        return UpgradeRefused("format", f"image manifest: {why}")

    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise bad("not a JSON object")
    if data.get("format") != FORMAT:
        raise bad(f"format {data.get('format')!r} is not {FORMAT}; this firmware reads format {FORMAT} only")
    for key, kind in (("product", str), ("version", str), ("boards", list), ("files", list)):
        if not isinstance(data.get(key), kind):
            raise bad(f"field {key!r} is missing or not a {kind.__name__}")
    for key in ("version", "min_from_version"):
        try:
            parse_version(str(data.get(key, "0")))
        except ValueError as exc:
            raise bad(f"field {key!r}: {exc}") from None
    files = [_file_entry(i, item, bad) for i, item in enumerate(data["files"])]
    paths = [f.path for f in files]
    if paths != sorted(paths) or len(set(paths)) != len(paths):
        raise bad("files are not sorted by path or list a path twice")
    return Manifest(raw, data, tuple(files))


def _file_entry(i: int, item: Any, bad: Callable[[str], UpgradeRefused]) -> FileEntry:
    try:
        entry = FileEntry(check_relative_path(item["path"]), int(item["size"]), str(item["sha256"]),
                          int(item.get("mode", 0o644)))
    except (KeyError, TypeError, ValueError) as exc:
        raise bad(f"files[{i}] is invalid ({exc})") from None
    if entry.size < 0 or not re.fullmatch(r"[0-9a-f]{64}", entry.sha256) or entry.mode not in FILE_MODES:
        raise bad(f"files[{i}] ({entry.path}) has an invalid size, sha256 or mode")
    return entry


def key_id(public_raw: bytes) -> str:
    """Key id: the first 16 hex digits of SHA-256 over the raw 32-byte Ed25519 public key."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


# --------------------------------------------------------------------------- reading


class _Reader:
    """Walks an image block by block and refuses anything that is not canonical."""

    def __init__(self, f: IO[bytes], total: int, name: str) -> None:
        self.f, self.total, self.name, self.pos = f, total, name, 0

    def read_exact(self, n: int, what: str) -> bytes:
        data = self.f.read(n)
        self.pos += len(data)
        if len(data) < n:
            raise UpgradeRefused("truncated", f"{self.name}: the image ends at byte {self.total}, in the middle "
                                 f"of {what}; it is truncated (copy or download it again)")
        return data

    def next_header(self) -> tarfile.TarInfo | None:
        at = self.pos
        block = self.read_exact(BLOCK_BYTES, f"the header at byte {at}")
        if block == _ZERO_BLOCK:
            self._check_end(at)
            return None
        try:
            info = tarfile.TarInfo.frombuf(block, ENCODING, "surrogateescape")
        except tarfile.HeaderError as exc:
            raise UpgradeRefused("damaged", f"{self.name}: the tar header at byte {at} is damaged ({exc})") from None
        if info.tobuf(tarfile.USTAR_FORMAT, ENCODING, "surrogateescape") != block or not info.isreg():
            raise UpgradeRefused("damaged", f"{self.name}: the tar header at byte {at} ({info.name!r}) is not "
                                 "the canonical header of a regular file; the image was altered")
        return info

    def data(self, info: tarfile.TarInfo) -> Iterator[bytes]:
        remaining = info.size
        while remaining:
            chunk = self.read_exact(min(remaining, CHUNK_BYTES), f"{info.name!r}")
            remaining -= len(chunk)
            yield chunk
        pad = -info.size % BLOCK_BYTES
        if pad and self.read_exact(pad, f"the padding after {info.name!r}") != bytes(pad):
            raise UpgradeRefused("damaged", f"{self.name}: the padding after {info.name!r} is not zero; "
                                 "the image was altered")

    def _check_end(self, at: int) -> None:
        expected = -(-(at + 2 * BLOCK_BYTES) // RECORD_BYTES) * RECORD_BYTES
        if self.total < expected:
            raise UpgradeRefused("truncated", f"{self.name}: {self.total} bytes, but its end-of-archive record "
                                 f"says {expected}; it is truncated (copy or download it again)")
        if self.total > expected:
            raise UpgradeRefused("damaged", f"{self.name}: {self.total - expected} bytes follow the end of "
                                 "the archive; the image was altered")
        rest = self.read_exact(expected - self.pos, "the end-of-archive record")
        if rest.count(0) != len(rest):
            raise UpgradeRefused("damaged", f"{self.name}: the end-of-archive record is not zero; "
                                 "the image was altered")


def open_regular(path: Path) -> IO[bytes]:
    """``path`` opened for reading when it is a regular file. A FIFO or a device would block the reader (a FIFO's
    open waits for a writer, its read for data) and hang the upgrade service, so they are refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UpgradeRefused("format", f"cannot read image {path}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UpgradeRefused("format", f"image {path} is not a regular file (it is a "
                                 f"{_file_kind(mode)}); give the path of the image file itself")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISDIR, "directory"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return kind
    return "special file"


@dataclass
class Image:
    """An opened image: its manifest and signatures. Nothing in it is trusted until ``trust.verify``."""

    path: Path
    manifest: Manifest
    signatures: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | Path) -> "Image":
        path = Path(path)
        f = open_regular(path)
        with f:
            reader = _Reader(f, path.stat().st_size, path.name)
            manifest, signatures, _ = _read_head(reader)
        return cls(path, manifest, signatures)

    def scan(self, sink: Callable[[FileEntry], "FileSink | None"] | None = None) -> None:
        """Read the whole image, check every member against the manifest and hand files to ``sink``.

        ``sink(entry)`` returns an object with ``write(bytes)`` and ``close()`` (or None to skip).
        Raises ``UpgradeRefused`` on the first difference; a sink may have received partial data then.
        """
        with open_regular(self.path) as f:
            reader = _Reader(f, self.path.stat().st_size, self.path.name)
            manifest, _, info = _read_head(reader)
            if manifest.raw != self.manifest.raw:
                raise UpgradeRefused("damaged", f"{self.path.name}: the manifest changed while reading")
            for entry in manifest.files:
                if info is None or info.name != entry.member:
                    found = "the end of the archive" if info is None else repr(info.name)
                    raise UpgradeRefused("damaged", f"{self.path.name}: expected {entry.member!r}, found {found}")
                if info.size != entry.size or info.mode != entry.mode:
                    raise UpgradeRefused("damaged", f"{self.path.name}: {entry.path} is {info.size} bytes mode "
                                         f"{info.mode:o}; the manifest says {entry.size} bytes mode {entry.mode:o}")
                out = sink(entry) if sink else None
                digest = hashlib.sha256()
                for chunk in reader.data(info):
                    digest.update(chunk)
                    if out is not None:
                        out.write(chunk)
                if out is not None:
                    out.close()
                if digest.hexdigest() != entry.sha256:
                    raise UpgradeRefused("damaged", f"{self.path.name}: {entry.path} does not match its SHA-256 "
                                         "in the manifest; the image is damaged")
                info = reader.next_header()
            if info is not None:
                raise UpgradeRefused("damaged", f"{self.path.name}: member {info.name!r} is not in the manifest")

    def iter_members(self) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
        """Every payload member with its content, for re-signing (content held in memory one at a time)."""
        with open(self.path, "rb") as f:
            reader = _Reader(f, self.path.stat().st_size, self.path.name)
            _, _, info = _read_head(reader)
            while info is not None:
                yield info, b"".join(reader.data(info))
                info = reader.next_header()


class FileSink(Protocol):
    """Where ``Image.scan`` puts one file's content."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


def _read_head(reader: _Reader) -> tuple[Manifest, dict[str, bytes], tarfile.TarInfo | None]:
    info = reader.next_header()
    if info is None or info.name != MANIFEST_NAME:
        raise UpgradeRefused("format", f"{reader.name}: the first member is not {MANIFEST_NAME}; "
                             "this is not a meter image")
    if info.size > MAX_MANIFEST_BYTES:
        raise UpgradeRefused("format", f"{reader.name}: manifest of {info.size} bytes is larger than "
                             f"{MAX_MANIFEST_BYTES}")
    manifest = parse_manifest(b"".join(reader.data(info)))
    signatures: dict[str, bytes] = {}
    info = reader.next_header()
    while info is not None and info.name.startswith(SIGNATURE_DIR + "/"):
        kid = info.name[len(SIGNATURE_DIR) + 1:].removesuffix(".sig")
        if not _KEYID_RE.fullmatch(kid) or info.size != SIGNATURE_BYTES or kid in signatures:
            raise UpgradeRefused("format", f"{reader.name}: {info.name!r} is not a signature member")
        signatures[kid] = b"".join(reader.data(info))
        info = reader.next_header()
    return manifest, signatures, info


# --------------------------------------------------------------------------- writing


class ImageWriter:
    """Writes members as canonical ustar: fixed owner (0/0, no names), fixed mtime, 0644/0755 only."""

    def __init__(self, f: IO[bytes], mtime: int) -> None:
        self.f, self.mtime, self.pos = f, int(mtime), 0

    def add(self, name: str, size: int, chunks: Iterable[bytes], mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, mode, self.mtime
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        try:
            header = info.tobuf(tarfile.USTAR_FORMAT, ENCODING, "surrogateescape")
        except ValueError as exc:
            raise ValueError(f"{name!r} cannot be stored in a ustar header ({exc}); shorten the path") from None
        self._write(header)
        written = 0
        for chunk in chunks:
            self._write(chunk)
            written += len(chunk)
        if written != size:
            raise ValueError(f"{name!r}: wrote {written} bytes, declared {size}")
        self._write(bytes(-size % BLOCK_BYTES))

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.add(name, len(data), [data], mode)

    def close(self) -> None:
        self._write(bytes(2 * BLOCK_BYTES))
        self._write(bytes(-self.pos % RECORD_BYTES))

    def _write(self, data: bytes) -> None:
        self.f.write(data)
        self.pos += len(data)


def write_signed(src: Image, out: IO[bytes], signatures: dict[str, bytes]) -> None:
    """Copy ``src`` to ``out`` with its signature set replaced by ``signatures``."""
    writer = ImageWriter(out, src.manifest.mtime)
    writer.add_bytes(MANIFEST_NAME, src.manifest.raw)
    for kid in sorted(signatures):
        writer.add_bytes(f"{SIGNATURE_DIR}/{kid}.sig", signatures[kid])
    for info, data in src.iter_members():
        writer.add(info.name, info.size, [data], info.mode)
    writer.close()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (the digest the manifest lists for every file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
