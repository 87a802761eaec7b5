"""Uploaded image bytes -> the uint8 input volume a model takes.

    pixels = imaging.prepare(data, net.input_shape, digits=False, max_pixels=16_800_000)

Decoding is defensive: only the formats below are opened (never EPS, which would run
Ghostscript), a JPEG's markers or a PNG's chunks are walked first (app/prescan.py bounds
their segments, chunks and scans), the size and the aspect ratio are checked from the
header before any pixel is decoded, and every failure becomes an `ImageError` carrying an
HTTP status and a sentence for the person who sent the file.

The decoder sees only what the tiny input needs: a JPEG is decoded at 1/2 to 1/8 scale
(draft mode), anything larger is box-reduced (`Image.reduce`) to a few times the input's
side before orientation, colour management and compositing run, so those cost the same
for a 16-megapixel photo as for a thumbnail. Colours are converted from the image's ICC
profile (a wide-gamut phone photo, a CMYK print file) to sRGB, which the models were
trained on. The server runs all of this in worker processes with a deadline and a memory
cap (app/decode_pool.py); this module is the part that needs none of that to be correct.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import ExifTags, Image, ImageCms

from app import prescan

# JPEG includes MPO, the multi-picture JPEG some cameras write.
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
FORMAT_NAMES = "JPEG, PNG, GIF, WebP, BMP or TIFF"

# MNIST digits: the digit fits a 20x20 box, centred by mass in a 28x28 field.
DIGIT_BOX = 20
# Below this contrast (0-255) between ink and paper, the picture is taken as blank.
MIN_INK_CONTRAST = 24.0
# Ink fainter than this share of the darkest stroke can always count as paper.
MAX_PAPER_FLOOR = 0.25
# Large uploads are reduced to this many pixels per side before finding the digit.
DIGIT_WORK_SIZE = 256
# imgproxy's default limit: a 24-megapixel camera's photo needs a smaller copy first.
MAX_PIXELS = 16_800_000
# Longer side / shorter side: a panorama is about 4, a receipt 10.
MAX_ASPECT = 32.0
# The decoded picture is kept at least this many times the input's side before resizing:
# JPEG's own 1/2-1/8 scaling is already a low-pass filter, so twice is margin enough for the
# antialiased resize (0.3 of 255 from four times, on average; a 320x240 photo decodes in
# 0.72 ms instead of 1.04).
WORK_FACTOR = 2
TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


class ImageError(Exception):
    """An upload that cannot become an input; `status` is the HTTP status to answer."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def configure_pillow(max_pixels: int) -> None:
    """Make Pillow's own decompression-bomb guard match ours and raise, never just warn.

    Process-wide, like Pillow's setting itself; called once by the app's lifespan and the CLI.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.simplefilter("error", Image.DecompressionBombWarning)


def open_image(data: bytes, max_pixels: int, max_aspect: float = MAX_ASPECT) -> Image.Image:
    """Open (not decode) an upload and check its size and shape; raises ImageError."""
    if not data:
        raise ImageError(422, "The uploaded file is empty.")
    try:
        declared = prescan.check(data)
    except prescan.ScanError as error:
        raise ImageError(error.status, error.detail) from None
    if declared:
        _check_size(*declared, max_pixels, max_aspect)
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(413, f"The image has more than {max_pixels:,} pixels.") from None
    except Image.UnidentifiedImageError:
        raise ImageError(
            415, f"This file is {describe(data)}, not an image this server reads ({FORMAT_NAMES})."
        ) from None
    except Exception as error:  # Pillow raises many types on a malformed header
        raise ImageError(
            422, f"The image's header is damaged or cut short: {_reason(error)}."
        ) from None
    _check_size(*image.size, max_pixels, max_aspect)
    return image


# What a file that is not a readable image most often is, by its first bytes.
SIGNATURES = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or a Word, Excel or PowerPoint file)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"ID3", "an MP3 sound"),
    (b"OggS", "an Ogg sound or video"),
    (b"\x1aE\xdf\xa3", "a WebM or MKV video"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a Windows program"),
    (b"8BPS", "a Photoshop file"),
)
# ISO media files say what they are at bytes 4-12: "ftyp" and a brand.
FTYP_BRANDS = {
    b"heic": "a HEIC photo (an iPhone's; set the camera to Most Compatible, or send a screenshot)",
    b"heix": "a HEIC photo",
    b"mif1": "a HEIF photo",
    b"avif": "an AVIF image",
    b"qt  ": "a QuickTime video",
}


def describe(data: bytes) -> str:
    """What bytes that are no image this server reads look like, for the 415 sentence:
    "text", "a PDF document", "a web page (HTML)", "a HEIC photo (...)"; "an unknown kind
    of file" when nothing matches."""
    head = data[:512]
    for signature, name in SIGNATURES:
        if head.startswith(signature):
            return name
    if head[4:8] == b"ftyp":
        return FTYP_BRANDS.get(head[8:12], "a video or a photo in an ISO media format")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut at the end of the first 512 bytes is still text.
        text = head[: error.start].decode("utf-8") if error.start > len(head) - 4 else None
    if text is None or any(c < " " and c not in "\t\n\r\f" for c in text):
        return "an unknown kind of file"
    lower = text.lstrip("\ufeff \t\r\n").lower()
    if lower.startswith(("<svg", "<?xml")) and "<svg" in lower:
        return "an SVG drawing (a vector picture; export it as PNG)"
    if lower.startswith(("<!doctype html", "<html")):
        return "a web page (HTML)"
    if lower.startswith(("{", "[")):
        return "text (JSON)"
    return "text"


def _check_size(width: int, height: int, max_pixels: int, max_aspect: float) -> None:
    if width < 1 or height < 1:
        raise ImageError(422, f"The image has no pixels ({width}x{height}).")
    if width * height > max_pixels:
        raise ImageError(
            413,
            f"The image is {width}x{height} = {width * height:,} pixels; "
            f"the limit is {max_pixels:,}.",
        )
    if max(width, height) > max_aspect * min(width, height):
        raise ImageError(
            422,
            f"The image is {width}x{height}, more than {max_aspect:g} times as long as it is "
            "wide; please crop it.",
        )


def decode(
    data: bytes,
    max_pixels: int,
    hint: tuple[int, int] | None = None,
    max_aspect: float = MAX_ASPECT,
) -> Image.Image:
    """Decode the first frame or page of an upload, upright (EXIF orientation applied), in
    sRGB, as RGB or L with any transparency composited over white.

    hint: (width, height) the caller will reduce the image to; the image is then decoded
    (JPEG) or reduced (others) to no less than WORK_FACTOR times it, which saves most of
    the time and memory.
    """
    image = open_image(data, max_pixels, max_aspect)
    kind = image.format
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        icc = image.info.get("icc_profile")
        if hint and kind in ("JPEG", "MPO"):
            image.draft(None, _draft_size(image.size, hint))
        image.load()
        if hint:
            image = _reduce(image, hint)
        if method := TRANSPOSE.get(orientation):
            image = image.transpose(method)
        if icc:
            image = to_srgb(image, icc)
        return flatten(image)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(413, f"The image has more than {max_pixels:,} pixels.") from None
    except MemoryError:
        raise
    except Exception as error:  # truncated or corrupt data, in any of the decoders
        raise ImageError(422, f"The {kind} image could not be decoded: {_reason(error)}.") from None


def _reduce(image: Image.Image, hint: tuple[int, int]) -> Image.Image:
    """Box-reduce by a whole factor, keeping the short side at least WORK_FACTOR x the hint's
    long side (the rest of the way is antialiased resizing, which needs the margin)."""
    factor = min(image.size) // (WORK_FACTOR * max(hint))
    if factor < 2 or image.mode not in ("L", "LA", "RGB", "RGBA", "RGBa", "CMYK", "I", "F"):
        return image
    info = image.info
    reduced = image.reduce(factor)
    reduced.info = info
    return reduced


def to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    """Colours from the image's ICC profile to sRGB (what the models were trained on).

    A profile that cannot be read, or that does not fit the image's mode, is ignored, as
    browsers do: the pixels are then taken as sRGB already.
    """
    mode = image.mode
    out = {"RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB"}.get(mode)
    if out is None:
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = source.profile.xcolor_space.strip()
        if space != ("CMYK" if mode == "CMYK" else "RGB"):
            return image
        converted = ImageCms.profileToProfile(image, source, SRGB, outputMode=out)
    except (OSError, ValueError, ImageCms.PyCMSError):
        return image
    return converted if converted is not None else image


def _draft_size(size: tuple[int, int], hint: tuple[int, int]) -> tuple[int, int]:
    """A draft request keeping the aspect ratio, with the short side WORK_FACTOR x the hint's."""
    width, height = size
    factor = WORK_FACTOR * max(hint) / min(width, height)
    return max(1, int(width * factor)), max(1, int(height * factor))


def _reason(error: Exception) -> str:
    text = str(error).strip().rstrip(".") or type(error).__name__
    return text[:200]


def flatten(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> "RGB" or "L", transparency composited over white."""
    mode = image.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _high_depth_to_l(image)
    if mode == "1":
        return image.convert("L")
    if mode == "La":  # grey with premultiplied alpha (TIFF); Pillow converts it only to LA
        image, mode = image.convert("LA"), "LA"
    if "A" in mode or "a" in mode or "transparency" in image.info:
        # Pasted through its own alpha onto white: two full-size copies, not four.
        rgba = image if mode == "RGBA" else image.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba)
        return white
    if mode in ("RGB", "L"):
        return image
    try:
        return image.convert("RGB")
    except ValueError:
        raise ImageError(422, f"Images in colour mode {mode} cannot be converted.") from None


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer or float grayscale -> 8-bit, keeping the full range visible.

    float32 and in place: a 40-megapixel image costs one 160 MB array, not six of 320 MB.
    """
    values = np.array(image, dtype=np.float32)  # a writable copy, even of a float image
    if image.mode.startswith("I;16"):
        values /= 257.0
    elif image.mode == "I" and values.max(initial=0) > 255:
        values /= 257.0  # 16-bit data (PNG, TIFF) held in a 32-bit image
    elif image.mode == "F" and values.size and np.nanmax(values) <= 1.0:
        values *= 255.0
    np.nan_to_num(values, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
    values += 0.5
    return Image.fromarray(np.clip(values, 0, 255, out=values).astype(np.uint8), "L")


def fit(image: Image.Image, height: int, width: int) -> Image.Image:
    """The centre crop of the target's aspect ratio, resized with antialiasing."""
    w, h = image.size
    target = width / height
    if w / h > target:
        crop_w, crop_h = h * target, h
    else:
        crop_w, crop_h = w, w / target
    left, top = (w - crop_w) / 2, (h - crop_h) / 2
    box = (left, top, left + crop_w, top + crop_h)
    return image.resize((width, height), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


def photo_input(image: Image.Image, shape: tuple[int, int, int]) -> np.ndarray:
    """An RGB or L image -> uint8 (H, W, D) for a model taking photos."""
    height, width, depth = shape
    mode = "L" if depth == 1 else "RGB"
    if image.mode not in (mode, "L"):
        image = image.convert(mode)
    # Grey is resized before it becomes RGB: the same pixels, a third of the memory.
    pixels = np.asarray(fit(image, height, width).convert(mode), dtype=np.uint8)
    return pixels.reshape(height, width, depth)


def digit_input(image: Image.Image, shape: tuple[int, int, int]) -> np.ndarray:
    """A photo or drawing of one digit -> uint8 (H, W, 1) that looks like MNIST:
    light ink on black, the digit scaled into a 20x20 box and centred by mass."""
    height, width, _ = shape
    gray = image.convert("L")
    gray.thumbnail((DIGIT_WORK_SIZE, DIGIT_WORK_SIZE), Image.Resampling.LANCZOS)
    ink = _ink(np.asarray(gray, dtype=np.float32))
    out = np.zeros((height, width), np.float32)
    if ink is not None:
        digit = _fit_box(_crop_to_ink(ink), round(DIGIT_BOX * min(height, width) / 28))
        _paste_centred_by_mass(out, digit)
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)[:, :, None]


def _ink(gray: np.ndarray) -> np.ndarray | None:
    """How much ink each pixel holds, 0 (paper) to 1, whatever the paper's colour;
    None for a blank picture."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    paper = float(np.median(border))
    if paper > 127:  # dark ink on light paper: turn it light-on-dark, like MNIST
        gray, paper = 255 - gray, 255 - paper
    ink = gray - paper
    peak = float(ink.max())
    if peak < MIN_INK_CONTRAST:
        return None
    ink /= peak
    # Uneven paper (shadows, texture) is dropped below a floor set by how uneven the border
    # is: a clean scan or an MNIST digit keeps its soft stroke edges (floor 0), which the
    # network was trained on; a photo of paper loses its shadows.
    border_ink = np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]])
    floor = min(MAX_PAPER_FLOOR, 2 * float(np.quantile(border_ink, 0.99)))
    return np.clip((ink - floor) / (1 - floor), 0, 1)


def _crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """The box holding all but a sliver of the ink mass, so stray specks do not count."""

    def span(mass: np.ndarray) -> tuple[int, int]:
        cumulative = np.cumsum(mass) / mass.sum()
        first = int(np.searchsorted(cumulative, 0.002))
        last = int(np.searchsorted(cumulative, 0.998))
        return first, min(last, len(mass) - 1) + 1

    top, bottom = span(ink.sum(axis=1))
    left, right = span(ink.sum(axis=0))
    return ink[top:bottom, left:right]


def _fit_box(ink: np.ndarray, box: int) -> np.ndarray:
    """Resize (antialiased) so the longer side is `box`, keeping the aspect ratio."""
    h, w = ink.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = Image.fromarray(ink, "F").resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0, 1)


def _paste_centred_by_mass(out: np.ndarray, digit: np.ndarray) -> None:
    h, w = digit.shape
    mass = digit.sum()
    rows, cols = np.arange(h), np.arange(w)
    centre_row = (digit.sum(axis=1) @ rows) / mass if mass else (h - 1) / 2
    centre_col = (digit.sum(axis=0) @ cols) / mass if mass else (w - 1) / 2
    top = int(np.clip(round((out.shape[0] - 1) / 2 - centre_row), 0, out.shape[0] - h))
    left = int(np.clip(round((out.shape[1] - 1) / 2 - centre_col), 0, out.shape[1] - w))
    out[top : top + h, left : left + w] = digit


def prepare(
    data: bytes,
    shape: tuple[int, int, int],
    *,
    digits: bool,
    max_pixels: int = MAX_PIXELS,
    max_aspect: float = MAX_ASPECT,
) -> np.ndarray:
    """Upload bytes -> uint8 (H, W, D) input pixels; raises ImageError (or MemoryError)."""
    height, width, _ = shape
    hint = (DIGIT_WORK_SIZE, DIGIT_WORK_SIZE) if digits else (width, height)
    image = decode(data, max_pixels, hint, max_aspect)
    try:
        return digit_input(image, shape) if digits else photo_input(image, shape)
    except (ImageError, MemoryError):
        raise
    except Exception as error:  # a decoder that fails only when the pixels are read
        raise ImageError(422, f"The image could not be decoded: {_reason(error)}.") from None
