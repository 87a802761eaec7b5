/**
 * A large photo shrunk in the browser before it goes up: the server crops and resizes it
 * to a few dozen pixels anyway, so over a classroom's Wi-Fi the megabytes of a phone's
 * photo are time spent for nothing. The server still accepts and handles any upload; this
 * only saves the wait. A file the browser cannot decode goes up as it is, so the server's
 * sentence says what is wrong with it.
 */

/** Uploads smaller than this go up as they are: shrinking them would save little. */
export const SHRINK_ABOVE_BYTES = 150_000;
/** The shorter side kept: several times what any shipped model's crop needs. */
export const TARGET_SIDE = 256;

/** The size to shrink a width x height picture to (shorter side `target`), or null
 * when it is small enough already. */
export function shrunkSize(width, height, target = TARGET_SIDE) {
  const shorter = Math.min(width, height);
  if (!(shorter > target)) return null;
  const factor = target / shorter;
  return { width: Math.max(1, Math.round(width * factor)), height: Math.max(1, Math.round(height * factor)) };
}

/** `file` shrunk to a JPEG whose shorter side is TARGET_SIDE, or `file` itself when it is
 * small, not a picture this browser decodes, or would not get smaller. */
export async function shrinkPhoto(file) {
  if (!(file instanceof Blob) || file.size <= SHRINK_ABOVE_BYTES || typeof createImageBitmap !== "function") return file;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    return file;
  }
  try {
    const size = shrunkSize(bitmap.width, bitmap.height);
    if (!size) return file;
    const canvas = document.createElement("canvas");
    canvas.width = size.width;
    canvas.height = size.height;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff"; // a transparent PNG's background, as JPEG has no alpha
    ctx.fillRect(0, 0, size.width, size.height);
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(bitmap, 0, 0, size.width, size.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
    if (!blob || blob.size >= file.size) return file;
    const name = (file.name || "photo").replace(/\.[^.]*$/, "") + ".jpg";
    return new File([blob], name, { type: "image/jpeg" });
  } finally {
    bitmap.close();
  }
}
