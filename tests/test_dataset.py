"""Dataset builder and crop sampler, on a tiny synthetic source folder (no Debian packages needed)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gendrpix_video.training import dataset as ds

COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: test

Files: *
Copyright: 2020 Someone
License: GPL-2+

Files: photos/a_*.png
 photos/b.jpg
Copyright: 2021 Photographer
License: CC-BY-4.0

Files: debian/*
Copyright: 2022 Packager
License: Expat
"""


def _photo(seed, w, h):
    rng = np.random.default_rng(seed)
    base = rng.random((h // 8 + 1, w // 8 + 1, 3))
    img = Image.fromarray((base * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
    return img


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "src"
    (src / "photos").mkdir(parents=True)
    (src / "copyright").write_text(COPYRIGHT)
    big = _photo(1, 2000, 1200)
    big.save(src / "photos" / "a_big.png")
    big.resize((1000, 600), Image.LANCZOS).save(src / "photos" / "a_small_copy.jpg", quality=80)
    _photo(2, 640, 480).save(src / "photos" / "b.jpg", quality=95)
    _photo(2, 640, 480).save(src / "photos" / "b_same.png")          # same picture, other format
    for i in range(12):
        _photo(10 + i, 400, 300).save(src / "photos" / f"c{i:02d}.png")
    _photo(99, 200, 120).save(src / "photos" / "tiny.png")              # below min_side
    _photo(98, 400, 300).save(src / "photos" / "skipme.png")
    return src


def test_build(source, tmp_path):
    cands = ds.collect_folder(source, "testpkg", exclude=["*/skipme.png"])
    assert len(cands) == 17
    out = tmp_path / "out"
    recs = ds.build(cands, out, max_side=1024, val_percent=15, log=lambda *_: None)
    files = {r.file.split("/", 1)[1] for r in recs}
    # duplicates collapse to the largest copy; too-small and excluded images are dropped
    assert "testpkg__a_big.jpg" in files and "testpkg__a_small_copy.jpg" not in files
    assert len([f for f in files if f.startswith("testpkg__b")]) == 1
    assert not any("tiny" in f or "skipme" in f for f in files)
    assert len(recs) == 14
    by_name = {r.file.split("/", 1)[1]: r for r in recs}
    big = by_name["testpkg__a_big.jpg"]
    assert (big.width, big.height) == (1024, 614)        # long side capped, aspect kept
    assert big.licence == "CC-BY-4.0" and big.copyright == "2021 Photographer"
    assert by_name["testpkg__c00.jpg"].licence == "GPL-2+"
    # split: deterministic from the name, at least one held out, files where the manifest says
    val = [r for r in recs if r.split == "val"]
    assert 1 <= len(val) < len(recs)
    for r in recs:
        assert (out / r.file).is_file() and r.file.startswith(r.split + "/")
        assert ds.is_val(r.file.split("/", 1)[1][:-4], 15) == (r.split == "val") or len(val) == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert [m["file"] for m in manifest] == sorted(r.file for r in recs)
    assert (out / "licenses.csv").read_text().count("\n") == len(recs) + 1
    # rebuilding gives the same split and files
    recs2 = ds.build(cands, out, max_side=1024, val_percent=15, log=lambda *_: None)
    assert [(r.file, r.split) for r in recs2] == [(r.file, r.split) for r in recs]
    assert len(list(out.glob("*/*.jpg"))) == len(recs)


def test_dep5_last_match_wins():
    paras = ds.parse_dep5(COPYRIGHT)
    from pathlib import Path
    assert ds.licence_for(Path("/usr/share/x/photos/a_1.png"), paras)[0] == "CC-BY-4.0"
    assert ds.licence_for(Path("/usr/share/x/other.png"), paras)[0] == "GPL-2+"
    # lomiri-style: source folder not kept in the install path, file name still identifies it
    assert ds.licence_for(Path("/usr/share/backgrounds/b.jpg"), paras)[0] == "CC-BY-4.0"


def test_photobank_sampling(source, tmp_path):
    out = tmp_path / "out"
    ds.build(ds.collect_folder(source, "t"), out, max_side=512, val_percent=15,
             log=lambda *_: None)
    bank = ds.PhotoBank.load(out, "train")
    val = ds.PhotoBank.load(out, "val")
    assert not set(bank.names) & set(val.names)
    a = bank.sample(6, 128, torch.Generator().manual_seed(3))
    b = bank.sample(6, 128, torch.Generator().manual_seed(3))
    c = bank.sample(6, 128, torch.Generator().manual_seed(4))
    assert a.shape == (6, 3, 128, 128) and a.dtype == torch.float32
    assert 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    big = bank.sample(2, 600, torch.Generator().manual_seed(0))  # larger than every photo: padded
    assert big.shape == (2, 3, 600, 600)
    dset = ds.RandomCropDataset(bank, size=64, length=5, seed=1)
    assert len(dset) == 5 and torch.equal(dset[2], dset[2]) and dset[0].shape == (3, 64, 64)
