"""Blob signatures, manifest rules and portable data hashes, as the API server and keepstore apply them."""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
import typing as t

BLOB_SIGNING_TTL = 1209600
EMPTY_BLOCK_HASH = "d41d8cd98f00b204e9800998ecf8427e"

# services/api's Keep::Locator::LOCATOR_REGEXP
LOCATOR_RE = re.compile(r"^([0-9a-fA-F]{32})(\+([0-9]+))?((\+([A-Z][A-Za-z0-9@_-]*))+)?$")
# sdk/go/arvados SignedLocatorRe: the hint may sit anywhere among the other hints
SIGNED_LOCATOR_RE = re.compile(
    r"^([0-9a-fA-F]{32})(\+[0-9]+)?((\+[B-Z][A-Za-z0-9@_-]*)*)(\+A([0-9a-fA-F]{40})@([0-9a-fA-F]{8}))((\+[B-Z][A-Za-z0-9@_-]*)*)$")
_PERMISSION_HINT = re.compile(r"\+A[^+]*")
_BLOCK_TOKEN = re.compile(r"^[0-9a-f]{32}")
_FILE_TOKEN = re.compile(r"^[0-9]+:[0-9]+:")

_STREAM_TOKEN = re.compile(r"^([^\000-\040\\]|\\[0-3][0-7][0-7])+$")
_STREAM_NAME = re.compile(r"^(\.)(/[^/]+)*$")
_EMPTY_DIR_TOKEN = re.compile(r"^0:0:\.$")
_FILE_TOKEN_FULL = re.compile(r"^[0-9]+:[0-9]+:([^\000-\040\\]|\\[0-3][0-7][0-7])+$")
_FILE_NAME = re.compile(r"^[0-9]+:[0-9]+:([^/]+(/[^/]+)*)$")
_NON_8BIT = re.compile(r"[^\\]\\[4-7][0-7][0-7]")
_ESCAPE = re.compile(r"\\(\\|[0-7]{3})")


class SignatureError(Exception):
    """A locator's permission signature is missing, expired or wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ManifestError(ValueError):
    """A manifest text breaks the manifest format."""


@dataclasses.dataclass(frozen=True)
class SigningKey:
    key: bytes
    ttl: int = BLOB_SIGNING_TTL

    @property
    def ttl_hex(self) -> str:
        return format(self.ttl, "x")

    def signature(self, block_hash: str, token: str, expiry_hex: str) -> str:
        message = "@".join((block_hash, token, expiry_hex, self.ttl_hex)).encode()
        return hmac.new(self.key, message, hashlib.sha1).hexdigest()

    def sign_locator(self, locator: str, token: str, expiry: int) -> str:
        if not token or not self.key:
            return locator
        expiry_hex = format(expiry, "08x")
        return f"{locator}+A{self.signature(locator.split('+', 1)[0], token, expiry_hex)}@{expiry_hex}"

    def verify_locator(self, locator: str, token: str, now: int) -> None:
        """Raises SignatureError("missing" | "expired" | "invalid") as keepstore classifies them."""
        match = SIGNED_LOCATOR_RE.match(locator)
        if not match:
            raise SignatureError("missing")
        signature, expiry_hex = match.group(6), match.group(7)
        if int(expiry_hex, 16) < now:
            raise SignatureError("expired")
        if not hmac.compare_digest(signature, self.signature(match.group(1), token, expiry_hex)):
            raise SignatureError("invalid")

    def sign_manifest(self, manifest: str, token: str, expiry: int) -> str:
        def sign_token(found: re.Match) -> str:
            word = found.group(0)
            if _BLOCK_TOKEN.match(word):
                return self.sign_locator(_PERMISSION_HINT.sub("", word), token, expiry)
            return word
        return re.sub(r"\S+", sign_token, manifest)

    def check_manifest_signatures(self, manifest: str, token: str, now: int) -> None:
        """The API server's check on a changed manifest: every non-empty block must carry a valid signature."""
        for line in manifest.splitlines():
            for word in line.split():
                if word == "." or word.startswith("./") or _FILE_TOKEN.match(word):
                    continue
                try:
                    self.verify_rails_signature(word, token, now)
                    continue
                except SignatureError as failure:
                    if failure.reason != "missing" or not word.startswith(EMPTY_BLOCK_HASH):
                        raise

    def verify_rails_signature(self, word: str, token: str, now: int) -> None:
        """services/api's Blob.verify_signature: the last +A hint counts."""
        if "+A" not in word:
            raise SignatureError("missing")
        signature_hint = word.split("+A")[-1].split("+")[0]
        signature, separator, expiry_hex = signature_hint.partition("@")
        if not separator or not re.match(r"^[0-9a-f]+$", expiry_hex):
            raise SignatureError("invalid")
        if int(expiry_hex, 16) < now:
            raise SignatureError("expired")
        if not hmac.compare_digest(signature, self.signature(word.split("+")[0], token, expiry_hex)):
            raise SignatureError("invalid")


def munge_locators(manifest: str, rewrite: t.Callable[[re.Match], str]) -> str:
    """Rewrites each locator the way the server's munge_manifest_locators does, normalising spacing."""
    if manifest == "":
        return ""
    pieces = manifest.split("\n")
    if manifest.endswith("\n"):
        pieces.pop()
    lines = []
    for line in pieces:
        words = line.split()
        rewritten = words[:1] + [rewrite(found) if (found := LOCATOR_RE.match(word)) else word for word in words[1:]]
        lines.append(" ".join(rewritten))
    return "\n".join(lines) + "\n"


def strip_signatures(manifest: str) -> str:
    return munge_locators(manifest, lambda found: _PERMISSION_HINT.sub("", found.group(0)))


def portable_manifest(manifest: str) -> str:
    return munge_locators(manifest, lambda found: found.group(1) + (found.group(2) or ""))


def portable_data_hash(manifest: str) -> str:
    portable = portable_manifest(manifest).encode()
    return f"{hashlib.md5(portable).hexdigest()}+{len(portable)}"


def _inspect(word: str) -> str:
    """Ruby's String#inspect, which the server's messages use."""
    return json.dumps(word)


def unescape_name(name: str) -> str:
    return _ESCAPE.sub(lambda found: "\\" if found.group(1) == "\\" else chr(int(found.group(1), 8)), name)


def validate_manifest(manifest: str) -> None:
    """Keep::Manifest.validate! from the server; raises ManifestError with its message."""
    if manifest == "":
        return
    if not manifest.endswith("\n"):
        raise ManifestError("Invalid manifest: does not end with newline")
    for number, line in enumerate(manifest[:-1].split("\n"), start=1):
        _validate_stream(number, line)


def _validate_stream(number: int, line: str) -> None:
    prefix = f"Manifest invalid for stream {number}"
    words = line.split(" ")
    while words and words[-1] == "":
        words.pop()
    if not words:
        raise ManifestError(f"{prefix}: missing stream name")
    stream = words.pop(0)
    if _NON_8BIT.search(stream):
        raise ManifestError(f"{prefix}: >8-bit encoded chars not allowed on stream token {_inspect(stream)}")
    unescaped = unescape_name(stream)
    if not (_STREAM_TOKEN.match(stream) and _STREAM_NAME.match(unescaped) and not re.search(r"/\.\.?(/|$)", unescaped)):
        raise ManifestError(f"{prefix}: missing or invalid stream name {_inspect(stream)}")
    locators = 0
    while words and LOCATOR_RE.match(words[0]):
        words.pop(0)
        locators += 1
    if locators == 0:
        raise ManifestError(f"{prefix}: missing or invalid locator {_inspect(words[0])}" if words else f"{prefix}: missing or invalid locator")
    if not words:
        raise ManifestError(f"{prefix}: no file tokens")
    for word in words:
        if _NON_8BIT.search(word):
            raise ManifestError(f"{prefix}: >8-bit encoded chars not allowed on file token {_inspect(word)}")
        if not _is_file_token(word):
            raise ManifestError(f"{prefix}: invalid file token {_inspect(word)}")
    if line.endswith(" "):
        raise ManifestError(f"{prefix}: trailing space")


def _is_file_token(word: str) -> bool:
    unescaped = unescape_name(word)
    if _EMPTY_DIR_TOKEN.match(unescaped):
        return True
    name = _FILE_NAME.match(unescaped)
    return bool(_FILE_TOKEN_FULL.match(word) and name and not {".", ".."} & set(name.group(1).split("/")))


def file_stats(manifest: str) -> tuple[int, int]:
    """(file_count, file_size_total) as Keep::Manifest counts them: segments summed per path, empty dir markers skipped."""
    sizes: dict[tuple[str, str], int] = {}
    for line in manifest.split("\n"):
        words = line.split()
        if not words:
            continue
        stream = unescape_name(words[0])
        in_files = False
        for word in words[1:]:
            if not in_files and LOCATOR_RE.match(word):
                continue
            in_files = True
            parts = word.split(":", 2)
            if len(parts) < 3:
                continue
            path = unescape_name(parts[2])
            directory, slash, base = path.rpartition("/")
            key = (stream + (slash + directory if slash else ""), base)
            sizes[key] = sizes.get(key, 0) + int(parts[1])
    count = sum(1 for (stream, name), size in sizes.items() if not (name == "." and size == 0))
    return count, sum(sizes.values())
