"""The install is small and light: `import edge` pulls neither torch nor onnx; data files ship in the wheel."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile

import pytest

from conftest import ROOT

HEAVY = ("torch", "onnx", "transformers", "onnxslim", "onnxscript")


def _imported_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd="/")
    return set(out.stdout.split())


@pytest.mark.parametrize("code", [
    "import edge",
    "import edge.cli",
    "from edge import catalog, detect; detect.detect('/'); catalog.profile_for(catalog.load_target('rpi4'))",
    "from edge.bundle import read_manifest",
])
def test_light_imports(code):
    loaded = _imported_after(code)
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_inspect_and_targets_do_not_import_heavy_modules(digits_bundle):
    code = (
        "from click.testing import CliRunner\nfrom edge.cli import main\n"
        f"assert CliRunner().invoke(main, ['inspect', {str(digits_bundle)!r}]).exit_code == 0\n"
        "assert CliRunner().invoke(main, ['targets', 'list']).exit_code == 0\n"
    )
    loaded = _imported_after(code)
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_registry_names_match_modules_and_classes():
    from edge import exporters
    from edge.runtime import BACKENDS

    for name, target in exporters.REGISTRY.items():
        module, cls = target.split(":")
        assert module == f"edge.exporters.{name}"
        assert cls == "".join(p.capitalize() for p in name.split("_")) + "Exporter"
        assert exporters.get(name).name == name
    for name, entry in BACKENDS.items():
        module = name.replace("-", "_")
        cls = "".join(p.capitalize() for p in name.split("-")) + "Backend"
        assert entry.backend == f"edge.runtime.{module}:{cls}"
    from edge.meters import METERS, meter

    for name, target in METERS.items():
        module = name.replace("-", "_")
        cls = "".join(p.capitalize() for p in name.split("-")) + "Meter"
        assert target == f"edge.meters.{module}:{cls}" and meter(name).name == name


@pytest.mark.slow
def test_wheel_carries_data_and_plain_install_works(tmp_path, digits_bundle):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("edge_toolkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("edge/targets/rpi4.toml", "edge/profiles/base.toml", "edge/exporters/pytorch.py", "edge/cli.py"):
        assert needed in names
    assert not [n for n in names if n.startswith(("tests/", "examples/", "exporters/"))]
    # A plain (not editable) install, with only the base dependencies, in a fresh venv.
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin/python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True)
    listed = subprocess.run([str(env_dir / "bin/edge"), "targets", "list"], capture_output=True, text=True, cwd=tmp_path)
    assert listed.returncode == 0 and "rpi-zero2w" in listed.stdout
    freeze = subprocess.run([str(py), "-m", "pip", "freeze"], capture_output=True, text=True).stdout.lower()
    assert "torch" not in freeze and "transformers" not in freeze and "onnx==" not in freeze
    # The runtime works there: edge.load and edge run on a bundle, without the export extra.
    bundle = ROOT / "examples/digits/images/2_000.png"
    code = ("import sys, numpy as np, edge\n"
            f"m = edge.load({str(digits_bundle)!r})\n"
            "print(int(m.run(np.zeros((1, 1, 8, 8), np.float32))['logits'].argmax()) >= 0,"
            " sorted({k.split('.')[0] for k in sys.modules} & {'torch', 'onnx', 'transformers'}))")
    loaded = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert loaded.stdout.strip() == "True []", loaded.stderr
    ran = subprocess.run([str(env_dir / "bin/edge"), "run", str(digits_bundle), "--input", str(bundle)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert ran.returncode == 9 and "pip install 'edge-toolkit[images]'" in ran.stderr  # images need Pillow
    np_file = tmp_path / "x.npy"
    subprocess.run([str(py), "-c", f"import numpy as np; np.save({str(np_file)!r}, np.zeros((1, 1, 8, 8), np.float32))"], check=True)
    ran = subprocess.run([str(env_dir / "bin/edge"), "run", str(digits_bundle), "--input", str(np_file)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert ran.returncode == 0 and "logits: float32 [1, 10]" in ran.stdout, ran.stderr
    # Exporting without the extra says exactly what to install.
    result = subprocess.run([str(env_dir / "bin/edge"), "export", str(ROOT / "examples/digits/model.py:create"),
                             "-t", "rpi4", "-o", str(tmp_path / "b")], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 9, result.stderr
    assert "pip install 'edge-toolkit[export]'" in result.stderr
