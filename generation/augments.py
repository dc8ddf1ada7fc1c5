"""The augmentation codes of the cutouts (nerdyrodent's two-letter codes), without torch or kornia, so
the CLI's help and the API's description can list them cheaply; generation.cutouts builds them."""

from __future__ import annotations

AUGMENT_CODES = {
    "Af": "random affine: up to 15 degrees, 10 % translation, 5 degrees shear (p 0.7)",
    "Pe": "random perspective, distortion 0.7 (p 0.7)",
    "Ji": "colour jitter: brightness, contrast, saturation and hue +-0.1 (p 0.7)",
    "Sh": "random sharpness 0.3 (p 0.5)",
    "Er": "random erasing of 10-40 % of the cutout (p 0.7)",
    "Ro": "random rotation up to 15 degrees (p 0.7)",
    "Fl": "horizontal flip (p 0.5)",
}
DEFAULT_AUGMENTS = "Af,Pe,Ji,Sh,Er"  # nerdyrodent's default is Af,Pe,Ji,Er; sharpness is added


def parse_augments(codes: str) -> tuple[str, ...]:
    """ "Af,Pe" -> ("Af", "Pe"); "", "none" or "off" -> (); unknown codes are refused with the list."""
    text = codes.strip()
    if text.lower() in ("", "none", "off"):
        return ()
    parts = tuple(c.strip() for c in text.replace(" ", ",").split(",") if c.strip())
    unknown = [c for c in parts if c not in AUGMENT_CODES]
    if unknown:
        known = ", ".join(f"{k} ({v})" for k, v in AUGMENT_CODES.items())
        raise ValueError(f"unknown augmentation(s) {', '.join(unknown)[:100]}; choose from {known}, or none")
    return parts
