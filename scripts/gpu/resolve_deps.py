"""Work out which wheels the GPU machine lacks for vLLM (and hf2vllm), without resolving torch.

A full `pip install --dry-run` for Python 3.12 walks torch's CUDA closure, which this index cannot
satisfy (torch 2.11.0 pins an nvidia-nccl-cu13 build it lacks) and takes minutes. The GPU image already
holds torch and its CUDA libraries, so this walks only the requirements of the wheels we carry:
read each wheel's Requires-Dist, drop what the image has, download the rest with --no-deps, repeat.

Usage: python3 resolve_deps.py WHEEL_DIR  (WHEEL_DIR already holds vllm-*.whl)
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Packages the GPU image ships (device KINDS.md, "Python packages already there", read 2026-11-17).
PRESENT = """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx humanize
hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2
joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch
mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti
nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand
nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink
nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum
opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker
prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks
pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image scikit-learn
scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken
timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers
treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt
xarray xxhash yarl zipp"""

# GPU-kernel and media packages that a plain Llama model in offline LLM / `vllm serve` does not import
# (vLLM guards each import and falls back); verified on an H100 by starting the engine without them.
# Not skippable (found on the device): apache-tvm-ffi (xgrammar imports it at engine import) and
# flashinfer-python + nvidia-cudnn-frontend (the engine core imports flashinfer at start-up).
SKIP = {
    "flashinfer-cubin", "flashinfer-jit-cache", "cuda-tile", "tilelang", "nvidia-cutlass-dsl",
    "nvidia-cutlass-dsl-libs-base", "nvidia-cutlass-dsl-libs-cu13", "quack-kernels", "tokenspeed-mla",
    "humming-kernels", "pynvvideocodec", "fastsafetensors", "torchcodec",
    "torch", "torchvision", "torchaudio", "numba", "triton",
}

# Where the newest release that satisfies a specifier conflicts with another carried wheel's pin,
# name the version a real resolver would pick (opentelemetry-sdk 1.45.2, picked for vLLM, pins the api). vLLM 0.26 pins apache-tvm-ffi==0.1.10; xgrammar 0.2.8
# needs >=0.1.11 (and fails at import with 0.1.10), 0.2.7 takes >=0.1.10.
PINS = {"xgrammar": "==0.2.7", "opentelemetry-api": "==1.45.2"}
# nvidia-cudnn-frontend 1.32 asks apache-tvm-ffi>=0.1.11, vLLM pins 0.1.10; the engine ran with 0.1.10.
ACCEPTED_CONFLICTS = {("nvidia-cudnn-frontend", "apache-tvm-ffi")}

# Python 3.12 on Linux x86_64, as on the GPU machine.
ENV = default_environment()
ENV.update(python_version="3.12", python_full_version="3.12.3", platform_machine="x86_64",
           platform_system="Linux", sys_platform="linux", implementation_name="cpython",
           platform_python_implementation="CPython", os_name="posix")

PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64", "manylinux_2_31_x86_64", "manylinux_2_34_x86_64",
             "manylinux_2_35_x86_64", "linux_x86_64"]


def wheel_name(path: Path) -> str:
    return canonicalize_name(path.name.split("-")[0])


def requirements_of(path: Path, extras: set[str]) -> list[Requirement]:
    with zipfile.ZipFile(path) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode()
    reqs = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.marker is None:
            reqs.append(req)
            continue
        for extra in extras | {""}:
            if req.marker.evaluate({**ENV, "extra": extra}):
                reqs.append(req)
                break
    return reqs


def download(spec: str, dest: Path) -> bool:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312", "--abi", "abi3", "--abi", "none",
           "-d", str(dest), spec]
    for plat in PLATFORMS:
        cmd[cmd.index("-d"):cmd.index("-d")] = ["--platform", plat]
    cmd += ["--platform", "any"] if False else []
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        print(f"FAILED {spec}: {res.stderr.strip().splitlines()[-1] if res.stderr else ''}", file=sys.stderr)
        return False
    return True


def main() -> int:
    dest = Path(sys.argv[1])
    present = {canonicalize_name(n) for n in PRESENT.split()}
    skip = {canonicalize_name(n) for n in SKIP}
    # extras wanted per package (fastapi[standard], mistral_common[image], ...)
    wanted_extras: dict[str, set[str]] = {}
    done: set[Path] = set()
    while True:
        wheels = {wheel_name(p): p for p in dest.glob("*.whl")}
        pending = [p for p in wheels.values() if p not in done]
        if not pending:
            break
        needed: dict[str, list[Requirement]] = {}
        for wheel in pending:
            done.add(wheel)
            for req in requirements_of(wheel, wanted_extras.get(wheel_name(wheel), set())):
                name = canonicalize_name(req.name)
                if req.extras:
                    new = set(req.extras) - wanted_extras.get(name, set())
                    if new:
                        wanted_extras.setdefault(name, set()).update(new)
                        if name in wheels:  # re-read its requirements with the new extras
                            done.discard(wheels[name])
                if name in present or name in skip or name in wheels:
                    continue
                needed.setdefault(name, []).append(req)
        for name, reqs in sorted(needed.items()):
            spec = name + ",".join([str(r.specifier) for r in reqs if str(r.specifier)] + ([PINS[name]] if name in PINS else []))
            print(f"download {spec}  (for {len(reqs)} requirement(s))")
            download(spec, dest)
        if not needed and all(p in done for p in dest.glob("*.whl")):
            break
    return check_consistency(dest)


def check_consistency(dest: Path) -> int:
    """Every carried wheel's requirements against the versions carried (what `pip check` would say)."""
    versions = {wheel_name(p): p.name.split("-")[1] for p in dest.glob("*.whl")}
    conflicts = 0
    for wheel in dest.glob("*.whl"):
        for req in requirements_of(wheel, set()):
            name = canonicalize_name(req.name)
            if (canonicalize_name(wheel_name(wheel)), name) in ACCEPTED_CONFLICTS:
                print(f"accepted: {wheel.name} asks {req}, carrying {versions.get(name)} (ran on the H100)")
                continue
            if name in versions and not req.specifier.contains(versions[name], prereleases=True):
                print(f"CONFLICT {wheel.name}: needs {req}, carrying {versions[name]}")
                conflicts += 1
    return 1 if conflicts else 0


if __name__ == "__main__":
    raise SystemExit(main())
