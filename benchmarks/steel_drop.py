"""A Pascal VOC drop in the shape of the NEU steel-surface database, generated: grey 200 x 200
strip crops (a rolled texture with drawn defects of the six NEU classes), one folder per coil
(= group), no templates. For exercising the steel line where no real NEU images exist; a user
brings the real ones.

    .venv/bin/python benchmarks/steel_drop.py OUT --coils 40 --per-coil 10 [--seed 0]
Then: defectqa retrain --line steel --drop OUT --month 2026-01 --map Scratch=scratches
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

from PIL import Image, ImageDraw

CLASSES = ("crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches")
LABELS = {"scratches": "Scratch"}
"""How the drop names a class where it differs from the line: renamed at ingest by --map."""
SIDE = 200


def draw_defect(draw: ImageDraw.ImageDraw, cls: str, x: int, y: int, s: float = 1.0) -> tuple[int, int, int, int]:
    """Draw one defect of cls with its top left at (x, y), scaled by s; its box."""
    def d(v: float) -> int:
        return round(v * s)
    if cls == "scratches":
        draw.line((x, y, x + d(60), y + d(8)), fill=235, width=3)
        return x - 2, y - 2, x + d(60) + 2, y + d(8) + 2
    if cls == "crazing":
        for k in range(4):
            draw.line((x + d(10 * k), y, x + d(10 * k + 6), y + d(40)), fill=60, width=1)
        return x, y, x + d(36), y + d(40)
    if cls == "patches":
        draw.ellipse((x, y, x + d(50), y + d(40)), fill=70)
        return x, y, x + d(50), y + d(40)
    if cls == "pitted_surface":
        for k in range(5):
            oy = d(4 * (k % 2))
            draw.ellipse((x + d(9 * k), y + oy, x + d(9 * k) + 5, y + oy + 5), fill=40)
        return x, y, x + d(36) + 5, y + d(4) + 5
    if cls == "inclusion":
        draw.rectangle((x, y, x + d(12), y + d(30)), fill=30)
        return x, y, x + d(12), y + d(30)
    draw.polygon([(x, y), (x + d(40), y + d(6)), (x + d(30), y + d(26)), (x + d(4), y + d(20))], fill=175)
    return x, y, x + d(40), y + d(26)  # rolled-in scale


def texture(rng: random.Random) -> Image.Image:
    """A rolled strip: horizontal bands of slightly varying grey, tilted a little."""
    im = Image.new("L", (SIDE, SIDE), rng.randint(110, 140))
    draw = ImageDraw.Draw(im)
    base, tilt = im.getpixel((0, 0)), rng.randint(0, 5)
    for y in range(0, SIDE, 4):
        draw.line((0, y, SIDE, y + tilt), fill=base - 10 + rng.randint(0, 20))
    return im


def _overlaps(box: tuple[int, int, int, int], boxes: list[tuple[int, int, int, int]]) -> bool:
    return any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in boxes)


def crop(rng: random.Random, classes: list[str]) -> tuple[Image.Image, list[tuple[str, tuple[int, int, int, int]]]]:
    """One crop with a defect of each of classes at a random free place (a class that finds no
    free place after a few tries is left out)."""
    im = texture(rng)
    draw, drawn = ImageDraw.Draw(im), []
    for cls in classes:
        for _ in range(20):
            s = rng.uniform(0.7, 1.4)
            x, y = rng.randint(4, SIDE - 4 - round(64 * s)), rng.randint(4, SIDE - 4 - round(44 * s))
            probe = ImageDraw.Draw(Image.new("L", (SIDE, SIDE)))
            box = draw_defect(probe, cls, x, y, s)
            if not _overlaps(box, [b for _, b in drawn]):
                drawn.append((cls, draw_defect(draw, cls, x, y, s)))
                break
    return im, drawn


def write_voc(folder: Path, name: str, im: Image.Image, objects: list[tuple[str, tuple[int, int, int, int]]]) -> None:
    im.save(folder / f"{name}.jpg", "JPEG", quality=95)
    objs = "".join(
        f"<object><name>{LABELS.get(c, c)}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for c, b in objects)
    (folder / f"{name}.xml").write_text(
        f"<annotation><filename>{name}.jpg</filename><size><width>{SIDE}</width><height>{SIDE}</height>"
        f"</size>{objs}</annotation>")


def make_drop(dest: Path, coils: list[str], per_coil: int, seed: int = 0, max_defects: int = 2) -> Path:
    """One folder per coil, per_coil crops each: 1..max_defects defects of random classes."""
    rng = random.Random(seed)
    for coil in coils:
        (dest / coil).mkdir(parents=True)
        for k in range(per_coil):
            classes = rng.sample(CLASSES, rng.randint(1, max_defects))
            write_voc(dest / coil, f"{coil}_{k:02d}", *crop(rng, classes))
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the drop into (must not exist)")
    parser.add_argument("--coils", type=int, default=40, help="coils (groups); the split holds out whole coils")
    parser.add_argument("--per-coil", type=int, default=10, help="crops per coil")
    parser.add_argument("--max-defects", type=int, default=2, help="most defects on one crop")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists: a drop is written into a new folder")
    make_drop(args.out, [f"coil-{i:03d}" for i in range(args.coils)], args.per_coil, args.seed, args.max_defects)
    print(f"{args.coils * args.per_coil} crops in {args.coils} coils -> {args.out}")


if __name__ == "__main__":
    main()
