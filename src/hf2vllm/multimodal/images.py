"""Image parts of chat messages: find them, resolve them to local images, refuse network URLs.

Accepted forms of an image part (anywhere in a message's ``content`` list)::

    {"type": "image_url", "image_url": {"url": "file:///abs/cat.png"}}          # OpenAI style
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR..."}}
    {"type": "image", "image": "images/cat.png"}                                 # Qwen style
    {"type": "image", "image": "file:///abs/cat.png"}  (or a data: URL)

Relative paths are resolved against the prompt file's directory. ``http(s)://`` URLs are refused:
hf2vllm never fetches over the network, and a comparison must not depend on what a server returns.
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pydantic import BaseModel, Field

from hf2vllm.errors import InputError


class ImageRef(BaseModel):
    """One image of a request, resolved to a local file or inline bytes (a ``data:`` URL)."""

    where: str = Field(description="Where the part was written, e.g. messages[0].content[1].")
    path: str | None = Field(None, description="Absolute file path for file/path sources.")
    data_url: str | None = Field(None, description="The data: URL for inline images.")

    def describe(self) -> str:
        return self.path or f"inline {self.data_url[:30] if self.data_url else ''}..."

    def load(self) -> Any:
        """Open the image with Pillow, decoded and converted to RGB (what both processors expect)."""
        from PIL import Image, UnidentifiedImageError

        try:
            if self.path is not None:
                with Image.open(self.path) as img:
                    return img.convert("RGB")
            payload = _decode_data_url(self.data_url or "", self.where)
            with Image.open(io.BytesIO(payload)) as img:
                return img.convert("RGB")
        except (OSError, UnidentifiedImageError) as err:
            raise InputError(f"{self.where}: cannot read image {self.describe()} ({err})") from None


def is_image_part(part: Any) -> bool:
    return isinstance(part, dict) and part.get("type") in {"image", "image_url"}


def image_ref_from_part(part: dict[str, Any], where: str, base_dir: Path | None) -> ImageRef:
    """Resolve one image part; raise ``InputError`` naming ``where`` for anything not local."""
    if part.get("type") == "image_url":
        spec = part.get("image_url")
        url = spec.get("url") if isinstance(spec, dict) else spec
    else:
        url = part.get("image", part.get("url"))
    if not isinstance(url, str) or not url:
        raise InputError(
            f'{where}: image part has no source; write {{"type": "image_url", "image_url": {{"url": '
            f'"file:///path.png"}}}} or {{"type": "image", "image": "path.png"}}'
        )
    return resolve_image_source(url, where, base_dir)


def resolve_image_source(source: str, where: str, base_dir: Path | None) -> ImageRef:
    scheme = urlparse(source).scheme.lower()
    if scheme in {"http", "https", "ftp", "s3", "gs"}:
        raise InputError(
            f"{where}: image URL {source[:80]!r} is remote; hf2vllm reads local images only "
            "(use a file:// URL, a path, or a data: URL)"
        )
    if scheme == "data":
        _decode_data_url(source, where)
        return ImageRef(where=where, data_url=source)
    if scheme == "file":
        parsed = urlparse(source)
        if parsed.netloc not in {"", "localhost"}:
            raise InputError(f"{where}: file URL {source!r} names host {parsed.netloc!r}; only local files")
        path = Path(unquote(parsed.path))
    elif scheme and len(scheme) > 1:  # a one-letter "scheme" is a Windows drive, not a URL
        raise InputError(f"{where}: unsupported image URL scheme {scheme!r} in {source[:80]!r}")
    else:
        path = Path(source).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise InputError(f"{where}: image file not found: {path}")
    return ImageRef(where=where, path=str(path.resolve()))


def check_request_images(requests: Any, base_dir: Path | None, where: str = "") -> None:
    """Open every image part of ``requests`` once (Pillow only, no processor): a missing file, a remote URL
    or a file that is not an image raises ``InputError`` naming the request and the part."""
    prefix = f"{where}: " if where else ""
    for req in requests:
        for i, msg in enumerate(req.messages or []):
            parts = msg.get("content") if isinstance(msg.get("content"), list) else []
            for j, part in enumerate(parts):
                if is_image_part(part):
                    spot = f"{prefix}request {req.id!r} messages[{i}].content[{j}]"
                    image_ref_from_part(part, spot, base_dir).load()


def _decode_data_url(url: str, where: str) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or not header.startswith("data:image/") or ";base64" not in header:
        raise InputError(f"{where}: data URL must look like data:image/png;base64,<payload>")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{where}: data URL payload is not valid base64") from None


def png_data_url(image: Any) -> str:
    """Encode a Pillow image as a ``data:image/png;base64,...`` URL."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
