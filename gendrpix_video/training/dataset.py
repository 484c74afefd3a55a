"""Training photos: build a small, licensed HR set from packaged photos, and sample crops from it.

Build (CLI):  python -m gendrpix_video.training.dataset build --out data/photos
Sources: photos shipped by Debian wallpaper packages (found with `dpkg -L`, licences read from
/usr/share/doc/<pkg>/copyright) and scikit-image's bundled sample photos. Graphics (gradients,
vector art) are left out by name: super-resolution learns from natural texture.

Output folder: `train/` and `val/` JPEGs (long side <= max_side, 4:4:4 chroma), `manifest.json`
(one record per photo: file, split, source package and version, original path, licence as the
package states it, copyright) and `licenses.csv` (the same, flat). The validation split is chosen by
a hash of the photo's name, so it is stable when photos are added or removed.

Sampling: `PhotoBank` decodes the whole (small) set once into uint8 tensors, on CPU or GPU, and
draws random HR crops with flips and transposes.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

Image.MAX_IMAGE_PIXELS = None  # trusted packaged wallpapers reach 5640x3172

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp"}
DEBIAN_PACKAGES = [
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "mate-backgrounds",
    "plasma-workspace-wallpapers",
]
# graphics and illustrations, not photos (checked by eye on the packages' contents)
DEFAULT_EXCLUDE = [
    "*/mate/abstract/*", "*/mate/desktop/*",
    "*/umang_by_*", "*/Fossa_by_*", "*/Painting-Colors_by_*",
    *(f"*/wallpapers/{t}/*" for t in (
        "Altai", "Autumn", "Canopee", "Cascade", "Cluster", "Elarun", "Flow", "FlyingKonqui",
        "Honeywave", "IceCold", "Kay", "Kokkini", "MilkyWay", "Opal", "PastelHills", "Patak",
        "SafeLanding", "Shell")),
    "*/screenshot.*", "*/images_dark/*",
]
# scikit-image's bundled photos and their licences as its docstrings state them
SKIMAGE_PHOTOS = {
    "astronaut.png": ("public domain (NASA)", "NASA"),
    "chelsea.png": ("CC0 (photographer Stefan van der Walt)", "Stefan van der Walt"),
    "coffee.png": ("CC0 (photographer Rachel Michetti)", "Rachel Michetti"),
    "rocket.jpg": ("public domain (SpaceX)", "SpaceX"),
    "hubble_deep_field.jpg": ("public domain (NASA)", "NASA"),
    "camera.png": ("CC0 (photographer Lav Varshney)", "Lav Varshney"),
    "brick.png": ("CC0 (CC0Textures)", "CC0Textures"),
    "grass.png": ("CC0 (CC0Textures)", "CC0Textures"),
    "gravel.png": ("CC0 (CC0Textures)", "CC0Textures"),
}


@dataclass
class Candidate:
    path: Path
    source: str            # package name, or a label for a plain folder
    version: str = ""
    licence: str = "unknown"
    copyright: str = ""
    upstream_licence: str = ""  # e.g. from a KDE wallpaper's metadata.json, when it differs
    group: str = ""        # candidates of one group are versions of one picture


@dataclass
class Record:
    file: str
    split: str
    width: int
    height: int
    bytes: int
    source: str
    version: str
    original_path: str
    original_sha256: str
    licence: str
    copyright: str
    upstream_licence: str = ""


# --- licences ----------------------------------------------------------------------------


@dataclass
class _CopyrightPara:
    patterns: list[str]
    licence: str
    copyright: str


def parse_dep5(text: str) -> list[_CopyrightPara]:
    """Files paragraphs of a machine-readable debian/copyright file (DEP-5), in order."""
    paras = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, val = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = val.strip()
        if "files" in fields and "license" in fields:
            paras.append(_CopyrightPara(
                fields["files"].split(),
                fields["license"].splitlines()[0].strip(),
                " ".join(fields.get("copyright", "").split()),
            ))
    return paras


def licence_for(path: Path, paras: list[_CopyrightPara]) -> tuple[str, str]:
    """(licence, copyright) of an installed file; as in DEP-5, the last matching paragraph wins.

    Patterns are relative to the upstream source tree, which the install layout does not keep
    (lomiri's `16.04/x.jpg` lands in /usr/share/backgrounds/x.jpg), so a pattern matches when it
    matches a trailing part of the installed path, or when its last part names the file exactly
    (not by wildcard: `debian/*` must not match every file).
    """
    parts = path.parts
    suffixes = ["/".join(parts[i:]) for i in range(len(parts))]
    found = ("unknown", "")
    for para in paras:
        for pat in para.patterns:
            if any(fnmatch.fnmatchcase(s, pat) for s in suffixes) or (
                "/" in pat and path.name == pat.rsplit("/", 1)[1]
            ):
                found = (para.licence, para.copyright)
    return found


# --- collecting candidates ----------------------------------------------------------------


def _excluded(path: Path, exclude: list[str]) -> bool:
    s = path.as_posix()
    return any(fnmatch.fnmatchcase(s, pat) for pat in exclude)


def _group_key(path: Path) -> str:
    # KDE wallpapers ship one picture at several resolutions under wallpapers/<Theme>/contents/
    m = re.search(r"/wallpapers/([^/]+)/contents/", path.as_posix())
    return f"kde:{m.group(1)}" if m else path.stem


def _kde_metadata(path: Path) -> tuple[str, str]:
    m = re.search(r"^(.*/wallpapers/[^/]+)/contents/", path.as_posix())
    if not m:
        return "", ""
    meta = Path(m.group(1)) / "metadata.json"
    try:
        plugin = json.loads(meta.read_text())["KPlugin"]
    except (OSError, ValueError, KeyError):
        return "", ""
    authors = ", ".join(a.get("Name", "") for a in plugin.get("Authors", []))
    return plugin.get("License", ""), authors


def collect_debian(packages=DEBIAN_PACKAGES, exclude=DEFAULT_EXCLUDE) -> list[Candidate]:
    """Images installed by Debian packages, with the licence from each package's copyright file."""
    out = []
    for pkg in packages:
        try:
            files = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True,
                                   check=True).stdout.split("\n")
            version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                                     capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            print(f"skipping {pkg}: not installed (apt-get install {pkg})", file=sys.stderr)
            continue
        copyright_file = Path(f"/usr/share/doc/{pkg}/copyright")
        paras = parse_dep5(copyright_file.read_text()) if copyright_file.is_file() else []
        for f in files:
            p = Path(f)
            if p.suffix.lower() not in IMAGE_EXTS or not p.is_file() or p.is_symlink():
                continue
            if _excluded(p, exclude):
                continue
            lic, cr = licence_for(p, paras)
            up_lic, authors = _kde_metadata(p)
            out.append(Candidate(p, pkg, version, lic, cr or authors, up_lic, _group_key(p)))
    return out


def collect_skimage() -> list[Candidate]:
    """scikit-image's bundled sample photos (no download), if scikit-image is installed."""
    try:
        import skimage
    except ImportError:
        return []
    root = Path(skimage.__file__).parent / "data"
    out = []
    for name, (lic, who) in SKIMAGE_PHOTOS.items():
        p = root / name
        if p.is_file():
            out.append(Candidate(p, "scikit-image", skimage.__version__, lic, who, "",
                                 f"skimage:{p.stem}"))
    return out


def collect_folder(folder: str | Path, label: str | None = None,
                   exclude: list[str] = ()) -> list[Candidate]:
    """Images in any folder; licences from a DEP-5 `copyright` file in it, if present."""
    folder = Path(folder)
    cfile = folder / "copyright"
    paras = parse_dep5(cfile.read_text()) if cfile.is_file() else []
    out = []
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() in IMAGE_EXTS and p.is_file() and not _excluded(p, list(exclude)):
            lic, cr = licence_for(p.relative_to(folder), paras)
            out.append(Candidate(p, label or folder.name, "", lic, cr, "", _group_key(p)))
    return out


# --- building -----------------------------------------------------------------------------


def _dhash(img: Image.Image, size: int = 16) -> int:
    """Difference hash of the luma: robust to resizing and re-encoding, for finding duplicates."""
    g = np.asarray(img.convert("L").resize((size + 1, size), Image.Resampling.BILINEAR),
                   dtype=np.int16)
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def is_val(name: str, val_percent: float) -> bool:
    """Deterministic split: a photo is validation when a hash of its name falls below the cut."""
    h = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    return (h % 10000) < val_percent * 100


def _safe_name(c: Candidate) -> str:
    stem = c.group.split(":", 1)[-1] if c.group.startswith(("kde:", "skimage:")) else c.path.stem
    prefix = {"scikit-image": "skimage"}.get(c.source, c.source)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{prefix}__{stem}")


def build(candidates: list[Candidate], out: str | Path, max_side: int = 1536,
          min_side: int = 256, quality: int = 92, val_percent: float = 10.0,
          dup_bits: int = 12, log=print) -> list[Record]:
    """Deduplicate, resize and store the candidates; write manifest.json and licenses.csv."""
    out = Path(out)
    # 1. within a group keep the largest version (most pixels), e.g. one KDE theme's resolutions
    best: dict[tuple[str, str], tuple[int, Candidate]] = {}
    for c in candidates:
        with Image.open(c.path) as im:
            px = im.width * im.height
            if min(im.size) < min_side:
                log(f"skip (smaller than {min_side} px): {c.path}")
                continue
        key = (c.source, c.group)
        if key not in best or px > best[key][0]:
            best[key] = (px, c)
    chosen = [c for _, c in sorted(best.values(), key=lambda t: (-t[0], str(t[1].path)))]
    # 2. drop exact and near duplicates across groups (largest first, so the best copy stays)
    records: list[Record] = []
    hashes: list[int] = []
    seen_sha: set[str] = set()
    names: set[str] = set()
    for split in ("train", "val"):
        (out / split).mkdir(parents=True, exist_ok=True)
        for old in (out / split).glob("*.jpg"):  # a rebuild must not leave stale photos behind
            old.unlink()
    for c in chosen:
        raw = c.path.read_bytes()
        sha = hashlib.sha256(raw).hexdigest()
        if sha in seen_sha:
            log(f"skip (identical file): {c.path}")
            continue
        img = Image.open(io.BytesIO(raw))
        img.load()
        img = img.convert("RGB")  # drops alpha and palettes; grey photos become RGB
        h = _dhash(img)
        if any(bin(h ^ o).count("1") <= dup_bits for o in hashes):
            log(f"skip (near-duplicate): {c.path}")
            continue
        seen_sha.add(sha)
        hashes.append(h)
        # 3. downscale with an antialiasing filter: also softens the source's own JPEG artefacts
        scale = max_side / max(img.size)
        if scale < 1:
            img = img.resize((round(img.width * scale), round(img.height * scale)),
                             Image.Resampling.LANCZOS, reducing_gap=3.0)
        name = _safe_name(c)
        while name in names:
            name += "_"
        names.add(name)
        split = "val" if is_val(name, val_percent) else "train"
        rel = f"{split}/{name}.jpg"
        img.save(out / rel, "JPEG", quality=quality, subsampling=0)
        records.append(Record(rel, split, img.width, img.height, (out / rel).stat().st_size,
                              c.source, c.version, str(c.path), sha, c.licence, c.copyright,
                              c.upstream_licence))
    # keep at least one validation photo so evaluation always has something held out
    if records and not any(r.split == "val" for r in records) and val_percent > 0:
        r = min(records, key=lambda r: hashlib.sha256(r.file.encode()).hexdigest())
        new = "val/" + r.file.split("/", 1)[1]
        os.replace(out / r.file, out / new)
        r.file, r.split = new, "val"
    records.sort(key=lambda r: r.file)
    write_manifest(records, out)
    return records


def write_manifest(records: list[Record], out: Path) -> None:
    (out / "manifest.json").write_text(json.dumps([asdict(r) for r in records], indent=1) + "\n")
    with open(out / "licenses.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(asdict(records[0]).keys()) if records else ["file"])
        w.writeheader()
        for r in records:
            w.writerow(asdict(r))


def read_manifest(root: str | Path) -> list[dict]:
    return json.loads((Path(root) / "manifest.json").read_text())


# --- sampling -----------------------------------------------------------------------------


@dataclass
class PhotoBank:
    """All photos of one split decoded once (uint8, 3 x H x W), sampled as random crops.

    The set is small (tens of photos, ~100 MP in all), so it fits in RAM or GPU memory and avoids
    a data-loader pipeline. Crops are drawn with probability proportional to photo area.
    """

    images: list[torch.Tensor]
    names: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, root: str | Path, split: str = "train", device="cpu") -> "PhotoBank":
        root = Path(root)
        recs = [r for r in read_manifest(root) if r["split"] == split]
        if not recs:
            raise FileNotFoundError(f"no {split!r} photos in {root}/manifest.json")
        imgs = []
        for r in recs:
            with Image.open(root / r["file"]) as im:
                arr = np.asarray(im.convert("RGB"))
            imgs.append(torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous().to(device))
        return cls(imgs, [r["file"] for r in recs])

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, batch: int, size: int = 256, generator: torch.Generator | None = None,
               flips: bool = True) -> torch.Tensor:
        """batch x 3 x size x size float crops in [0,1], on the bank's device.

        Photos smaller than the crop are reflect-padded. With `flips`, each crop is randomly
        flipped horizontally and vertically and transposed (the 8 dihedral variants).
        """
        g = generator if generator is not None else torch.Generator().manual_seed(
            int(torch.randint(0, 2**62, (1,))))
        # draws happen on the generator's device (a CUDA generator only makes CUDA tensors)
        areas = torch.tensor([im.shape[1] * im.shape[2] for im in self.images],
                             dtype=torch.float, device=g.device)
        idx = torch.multinomial(areas, batch, replacement=True, generator=g).cpu()
        rnd = torch.rand(batch, 5, generator=g, device=g.device).cpu()
        crops = []
        for i, r in zip(idx.tolist(), rnd):
            im = self.images[i]
            _, h, w = im.shape
            while h < size or w < size:
                # reflect padding may add at most dim-1 pixels per round
                pw, ph = min(max(0, size - w), w - 1), min(max(0, size - h), h - 1)
                im = torch.nn.functional.pad(im[None].float(), (0, pw, 0, ph),
                                             mode="reflect")[0].to(im.dtype)
                _, h, w = im.shape
            y = int(r[0] * (h - size + 1))
            x = int(r[1] * (w - size + 1))
            c = im[:, y : y + size, x : x + size]
            if flips:
                if r[2] < 0.5:
                    c = c.flip(-1)
                if r[3] < 0.5:
                    c = c.flip(-2)
                if r[4] < 0.5:
                    c = c.transpose(-1, -2)
            crops.append(c)
        return torch.stack(crops).float().div_(255)


class RandomCropDataset(torch.utils.data.Dataset):
    """A map-style view of a PhotoBank for DataLoader users: item i is one seeded random crop."""

    def __init__(self, bank: PhotoBank, size: int = 256, length: int = 10000, seed: int = 0,
                 flips: bool = True):
        self.bank, self.size, self.length, self.seed, self.flips = bank, size, length, seed, flips

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        return self.bank.sample(1, self.size, g, self.flips)[0]


# --- CLI ----------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gendrpix_video.training.dataset")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the HR photo set")
    b.add_argument("--out", default="data/photos")
    b.add_argument("--max-side", type=int, default=1536)
    b.add_argument("--quality", type=int, default=92)
    b.add_argument("--val-percent", type=float, default=10.0)
    b.add_argument("--packages", nargs="*", default=DEBIAN_PACKAGES)
    b.add_argument("--no-skimage", action="store_true")
    b.add_argument("--folder", action="append", default=[],
                   help="extra folder of images (licences from a DEP-5 'copyright' file in it)")
    b.add_argument("--all", action="store_true", help="keep graphics too (no default excludes)")
    b.add_argument("--budget-mib", type=float, default=40.0)
    args = ap.parse_args(argv)
    exclude = [] if args.all else DEFAULT_EXCLUDE
    cands = collect_debian(args.packages, exclude)
    if not args.no_skimage:
        cands += collect_skimage()
    for f in args.folder:
        cands += collect_folder(f, exclude=exclude)
    if not cands:
        print("no source images found: install the Debian packages "
              f"({' '.join(DEBIAN_PACKAGES)}) or pass --folder", file=sys.stderr)
        return 1
    recs = build(cands, args.out, max_side=args.max_side, quality=args.quality,
                 val_percent=args.val_percent)
    total = sum(r.bytes for r in recs)
    n_val = sum(r.split == "val" for r in recs)
    lics: dict[str, int] = {}
    for r in recs:
        lics[r.licence] = lics.get(r.licence, 0) + 1
    print(f"{len(recs)} photos ({len(recs) - n_val} train, {n_val} val), "
          f"{total / 2**20:.1f} MiB in {args.out}")
    print("licences: " + ", ".join(f"{k} x{v}" for k, v in sorted(lics.items())))
    if total > args.budget_mib * 2**20:
        print(f"over the {args.budget_mib} MiB budget: lower --max-side or --quality",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
