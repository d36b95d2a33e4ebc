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


def _workstation(loaded: set[str]) -> set[str]:
    """What of ``loaded`` belongs on the workstation: the build half, the exporters, heavy packages."""
    return {m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(("edge.build", "edge.exporters"))}


def device_modules() -> list[str]:
    """Every module of the device half and of the shared core, found by walking the folders."""
    import pkgutil

    import edge.core
    import edge.device

    found = []
    for package in (edge.core, edge.device):
        found += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return found


def test_device_half_never_imports_the_build_half():
    modules = device_modules()
    # the walk must see the device half, or this test would pass on an empty list
    assert {"edge.device.model", "edge.device.runtime.onnxruntime", "edge.device.profiler.child",
            "edge.device.meters.rapl", "edge.core.bundle"} <= set(modules)
    loaded = _imported_after("\n".join(f"import {m}" for m in modules))
    assert set(modules) <= loaded
    assert not _workstation(loaded)


def test_boundary_check_sees_a_build_import():
    # the same probe, fed a module that does cross the line, must say so
    assert "edge.build.export" in _workstation(_imported_after("import edge.build.export"))


@pytest.mark.parametrize("code", [
    "import edge",
    "import edge.cli",
    "from edge.core import catalog\nfrom edge.device import detect\n"
    "detect.detect('/'); catalog.profile_for(catalog.load_target('rpi4'))",
])
def test_light_imports(code):
    assert not _workstation(_imported_after(code))


def test_inspect_and_targets_do_not_import_heavy_modules(digits_bundle):
    code = (
        "from click.testing import CliRunner\nfrom edge.cli import main\n"
        f"assert CliRunner().invoke(main, ['inspect', {str(digits_bundle)!r}]).exit_code == 0\n"
        "assert CliRunner().invoke(main, ['targets', 'list']).exit_code == 0\n"
    )
    assert not _workstation(_imported_after(code))


def test_registry_names_match_modules_and_classes():
    from edge import exporters
    from edge.device.runtime import BACKENDS

    for name, target in exporters.REGISTRY.items():
        module, cls = target.split(":")
        assert module == f"edge.exporters.{name}"
        assert cls == "".join(p.capitalize() for p in name.split("_")) + "Exporter"
        assert exporters.get(name).name == name
    for name, entry in BACKENDS.items():
        module = name.replace("-", "_")
        cls = "".join(p.capitalize() for p in name.split("-")) + "Backend"
        assert entry.backend == f"edge.device.runtime.{module}:{cls}"
    from edge.device.meters import METERS, meter

    for name, target in METERS.items():
        module = name.replace("-", "_")
        cls = "".join(p.capitalize() for p in name.split("-")) + "Meter"
        assert target == f"edge.device.meters.{module}:{cls}" and meter(name).name == name


@pytest.mark.slow
def test_wheel_carries_data_and_plain_install_works(tmp_path, digits_bundle):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("edge_deploy-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("edge/targets/rpi4.toml", "edge/profiles/base.toml", "edge/exporters/pytorch.py", "edge/cli/__init__.py", "edge/build/export.py", "edge/build/llm/export.py", "edge/device/llm.py"):
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
            "x = np.linspace(0, 1, 64, dtype=np.float32).reshape(1, 1, 8, 8)\n"
            "print(m.run(x)['logits'].round(4).tolist(),"
            " sorted({k.split('.')[0] for k in sys.modules} & {'torch', 'onnx', 'transformers'}))")
    loaded = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    import numpy as np

    import edge

    x = np.linspace(0, 1, 64, dtype=np.float32).reshape(1, 1, 8, 8)
    here = edge.load(digits_bundle).run(x)["logits"].round(4).tolist()  # the same artifact in this environment
    assert loaded.stdout.strip() == f"{here} []", loaded.stderr
    ran = subprocess.run([str(env_dir / "bin/edge"), "run", str(digits_bundle), "--input", str(bundle)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert ran.returncode == 9 and "pip install 'edge-deploy[images]'" in ran.stderr  # images need Pillow
    np_file = tmp_path / "x.npy"
    subprocess.run([str(py), "-c", f"import numpy as np; np.save({str(np_file)!r}, np.zeros((1, 1, 8, 8), np.float32))"], check=True)
    ran = subprocess.run([str(env_dir / "bin/edge"), "run", str(digits_bundle), "--input", str(np_file)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert ran.returncode == 0 and "logits: float32 [1, 10]" in ran.stdout, ran.stderr
    # Exporting without the extra says exactly what to install.
    result = subprocess.run([str(env_dir / "bin/edge"), "export", str(ROOT / "examples/digits/model.py:create"),
                             "-t", "rpi4", "-o", str(tmp_path / "b")], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 9, result.stderr
    assert "pip install 'edge-deploy[export]'" in result.stderr


def test_every_package_folder_is_in_the_wheel_list():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "edge").rglob("__init__.py")}
    assert folders and folders <= listed, f"missing from pyproject's packages: {sorted(folders - listed)}"
