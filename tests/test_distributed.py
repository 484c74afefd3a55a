"""Data-parallel training (torchrun, gloo on CPU): gradients are averaged, ranks stop together,
rank 0 alone writes the results."""

import json
import subprocess
import sys
from pathlib import Path

from gendrpix_video import load_model

TESTS = Path(__file__).parent


def torchrun(tmp_path, script: str, *args, n=2):
    launcher = tmp_path / "launch.py"
    launcher.write_text(f"import sys\nsys.path.insert(0, {str(TESTS)!r})\n" + script)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
                           str(launcher), *args], capture_output=True, text=True, timeout=300)


def test_gradients_are_averaged_and_decisions_shared(tmp_path):
    script = f"""
import json, torch
from gendrpix_video.training import distributed
g = distributed.setup("cpu")
m = torch.nn.Linear(3, 2)
with torch.no_grad():
    m.weight.fill_(g.rank)  # ranks differ until same_weights
distributed.same_weights(m, g)
m.weight.grad = torch.full_like(m.weight, g.rank + 1.0)   # bias.grad stays None: counts as zero
distributed.average_gradients(m.parameters(), g)
out = dict(world=g.world, w=m.weight.sum().item(), grad=m.weight.grad[0, 0].item(), bias=m.bias.grad.abs().sum().item(),
           stop=distributed.any_rank(g.rank == 1, g), keep=distributed.any_rank(False, g),
           value=distributed.from_main(10.0 + g.rank, g))
open({str(tmp_path)!r} + f"/rank{{g.rank}}.json", "w").write(json.dumps(out))
distributed.close(g)
"""
    r = torchrun(tmp_path, script)
    assert r.returncode == 0, r.stderr[-2000:]
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got == dict(world=2, w=0.0, grad=1.5, bias=0.0, stop=True, keep=False, value=10.0)


def test_two_processes_train_one_model(tmp_path):
    from test_training import make_photo_set
    photos = make_photo_set(tmp_path / "photos")
    out = tmp_path / "run"
    script = "import conftest\nfrom gendrpix_video.training import train\nsys.exit(train.main())\n"
    common = ["--config", "tiny", "--data", str(photos), "--teacher", "test-bicubic", "--batch", "2",
              "--crop", "64", "--bank", "2", "--device", "cpu", "--eval-every", "1000"]
    r = torchrun(tmp_path, script, *common, "--max-steps", "3", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.count("stopped at step 3") == 1          # rank 0 alone reports and writes
    assert "2 process(es) x batch 2" in r.stderr
    state = json.loads((out / "state.json").read_text())
    assert state["step"] == 3 and len(state["evals"]) == 1
    prov = load_model(out / "model.safetensors", device="cpu").metadata["provenance"]
    assert prov["gpus"] == 2 and prov["batch"] == 4
    # Stage II too: the discriminator's gradients are averaged the same way.
    out2 = tmp_path / "run2"
    r = torchrun(tmp_path, script, *common, "--stage", "2", "--init", str(out / "model.safetensors"),
                 "--max-steps", "2", "--out", str(out2))
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((out2 / "state.json").read_text())["step"] == 2
