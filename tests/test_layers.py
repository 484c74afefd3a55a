"""Imports point one way: front ends (cli/, measure/, training/, the VapourSynth filter) ->
cluster/ (the scale-out driver, a front end of the video seam that the others may call) -> video/
-> the core; Ray is imported in cluster/ only; no module imports another's _private names; inside the package the core is imported
from its modules, not through the package face (gendrpix_video/__init__.py)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "gendrpix_video"
FRONT_ENDS = ("cli", "measure", "training")
LAYER = {"core": 0, "video": 1, "cluster": 2, "front": 3}


def module_name(path: Path) -> str:
    if path.is_relative_to(ROOT / "vs_plugin"):
        rel = path.relative_to(ROOT / "vs_plugin").with_suffix("")
        return ".".join(("vsgendrpix", *[p for p in rel.parts if p != "__init__"]))
    rel = path.relative_to(ROOT).with_suffix("")
    return ".".join(p for p in rel.parts if p != "__init__")


def layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "vsgendrpix":
        return "front"
    if parts[0] != "gendrpix_video":
        return None
    if len(parts) == 1:
        return "face"
    if parts[1] == "video":
        return "video"
    if parts[1] == "cluster":
        return "cluster"
    if parts[1] in FRONT_ENDS:
        return "front"
    return "core"


def imports(path: Path):
    """(imported module, names) for every import in the file, relative ones made absolute."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[: len(up) - node.level + 1]
                base = ".".join([*up, base]) if base else ".".join(up)
            yield base, [a.name for a in node.names]


def sources():
    return sorted(PKG.rglob("*.py")) + sorted((ROOT / "vs_plugin").rglob("*.py"))


def test_imports_point_down_and_skip_the_face():
    bad = []
    for path in sources():
        me = module_name(path)
        mine = layer(me)
        for target, names in imports(path):
            theirs = layer(target)
            if theirs is None or target == me:
                continue
            if theirs == "face":
                # The filter lives outside the package and may use its face; `from gendrpix_video
                # import policy` names a module, and __version__ has no other home.
                api = [n for n in names if not n.startswith("__") and not (PKG / f"{n}.py").exists()
                       and not (PKG / n).is_dir()]
                if not me.startswith("vsgendrpix") and (api or not names):
                    bad.append(f"{me} imports the package face: {target} {api}")
                continue
            if mine in LAYER and LAYER[theirs] > LAYER[mine]:
                bad.append(f"{me} ({mine}) imports {target} ({theirs})")
            if mine == "front" and theirs == "front" and target.split(".")[:2] != me.split(".")[:2] \
                    and not me.startswith("vsgendrpix"):
                bad.append(f"{me} imports another front end: {target}")
    assert not bad, "\n".join(bad)


def test_no_private_names_imported_from_other_modules():
    bad = []
    for path in sources():
        me = module_name(path)
        for target, names in imports(path):
            if target == me:
                continue
            for n in names:
                if n.startswith("_") and not n.startswith("__"):
                    bad.append(f"{me} imports {n} from {target}")
    assert not bad, "\n".join(bad)


def test_checker_reads_relative_imports():
    """The walk finds relative imports (so a passing run means something)."""
    found = {t for t, _ in imports(PKG / "video" / "pipeline.py")}
    assert "gendrpix_video.loading" in found and "gendrpix_video.video.presets" in found


def test_ray_only_in_cluster():
    """A plain run never imports Ray: only cluster/ names it (and imports it inside functions)."""
    bad = []
    for path in sources():
        me = module_name(path)
        for target, _ in imports(path):
            if target.split(".")[0] == "ray" and not me.startswith("gendrpix_video.cluster."):
                bad.append(f"{me} imports {target}")
        if me.startswith("gendrpix_video.cluster"):
            top = ast.parse(path.read_text()).body
            for node in top:
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                    if any(n.split(".")[0] == "ray" for n in names):
                        bad.append(f"{me} imports ray at module level")
    assert not bad, "\n".join(bad)
