"""Is there an NVIDIA GPU we may hand to TensorRT? Asked before anything touches TensorRT.

Creating a TensorRT runtime without a usable GPU logs CUDA error 35 and the next call segfaults, so
every TensorRT path asks `probe_gpu()` first. The probe never imports torch (slow, and it would make
the answer depend on torch's CUDA build). Sources, most authoritative first:

1. cuda-python (`cuda.bindings.runtime`, older `cuda.cudart`): the CUDA runtime itself; its answer is
   final when it is importable.
2. `nvidia-smi`: the driver sees a GPU (runtime not checked).
3. `/proc/driver/nvidia/gpus/*/information`: the kernel driver has a GPU bound (runtime not checked).

Set CKD_DISABLE_GPU=1 to force the CPU paths (tests, debugging).
"""
from __future__ import annotations

import dataclasses
import functools
import glob
import os
import shutil
import subprocess
from typing import Callable, List, Optional, Tuple

TEGRA_RELEASE = "/etc/nv_tegra_release"


@dataclasses.dataclass(frozen=True)
class GpuInfo:
    available: bool
    reason: str
    name: Optional[str] = None
    compute_capability: Optional[Tuple[int, int]] = None
    driver_version: Optional[str] = None
    runtime_version: Optional[str] = None
    device_count: int = 0
    source: str = "none"
    l4t_release: Optional[str] = None

    @property
    def sm(self) -> Optional[str]:
        cc = self.compute_capability
        return f"{cc[0]}.{cc[1]}" if cc else None

    def describe(self) -> str:
        if not self.available:
            return f"no GPU ({self.reason})"
        parts = [self.name or "NVIDIA GPU"]
        if self.sm:
            parts.append(f"sm {self.sm}")
        if self.driver_version:
            parts.append(f"driver {self.driver_version}")
        if self.runtime_version:
            parts.append(f"CUDA runtime {self.runtime_version}")
        if self.l4t_release:
            parts.append(f"L4T {self.l4t_release}")
        return ", ".join(parts)


def cuda_version_str(v: int) -> str:
    """CUDA encodes versions as 1000*major + 10*minor (12040 -> '12.4')."""
    return f"{v // 1000}.{(v % 1000) // 10}"


def import_cudart():
    """The cuda-python runtime module (new layout first), or None when cuda-python is missing."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
        return cudart
    except ImportError:
        pass
    try:
        from cuda import cudart  # older cuda-python
        return cudart
    except ImportError:
        return None


def read_l4t_release(path: str = TEGRA_RELEASE) -> Optional[str]:
    """'R36.3.0' from '# R36 (release), REVISION: 3.0, ...' on Jetson; None elsewhere."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline()
    except OSError:
        return None
    return parse_l4t_release(first)


def parse_l4t_release(line: str) -> Optional[str]:
    line = line.strip().lstrip("#").strip()
    if not line.startswith("R"):
        return None
    major = line.split()[0]
    rev = None
    for field in line.split(","):
        field = field.strip()
        if field.upper().startswith("REVISION:"):
            rev = field.split(":", 1)[1].strip()
    return f"{major}.{rev}" if rev else major


def _err_ok(cudart, err) -> bool:
    return int(err) == int(cudart.cudaError_t.cudaSuccess)


def probe_cuda_python(cudart=None) -> Optional[GpuInfo]:
    """Ask the CUDA runtime. None when cuda-python is not importable (then other sources decide)."""
    cudart = cudart if cudart is not None else import_cudart()
    if cudart is None:
        return None
    try:
        err, count = cudart.cudaGetDeviceCount()
        if not _err_ok(cudart, err):
            name = getattr(err, "name", str(err))
            return GpuInfo(False, f"CUDA runtime: cudaGetDeviceCount failed ({name})", source="cuda-python")
        if count < 1:
            return GpuInfo(False, "CUDA runtime reports 0 devices", source="cuda-python")
        err, props = cudart.cudaGetDeviceProperties(0)
        if not _err_ok(cudart, err):
            return GpuInfo(False, f"CUDA runtime: cudaGetDeviceProperties failed ({err})", source="cuda-python")
        name = props.name
        name = name.split(b"\0", 1)[0].decode(errors="replace") if isinstance(name, bytes) else str(name)
        _, drv = cudart.cudaDriverGetVersion()
        _, rt = cudart.cudaRuntimeGetVersion()
    except Exception as exc:  # broken install: report it rather than crash the caller
        return GpuInfo(False, f"cuda-python probe failed: {exc}", source="cuda-python")
    return GpuInfo(
        True,
        f"CUDA runtime sees {count} device(s)",
        name=name.strip(),
        compute_capability=(int(props.major), int(props.minor)),
        driver_version=cuda_version_str(int(drv)) if drv else None,
        runtime_version=cuda_version_str(int(rt)) if rt else None,
        device_count=int(count),
        source="cuda-python",
    )


def parse_nvidia_smi_csv(text: str, with_cc: bool = True
                         ) -> List[Tuple[str, Optional[Tuple[int, int]], Optional[str]]]:
    """Rows (name, compute capability, driver) of `--query-gpu=name[,compute_cap],driver_version`."""
    rows = []
    for line in text.strip().splitlines():
        cells = [c.strip() for c in line.split(",")]
        if not cells[0]:
            continue
        cc = None
        if with_cc and len(cells) > 1:
            try:
                major, minor = cells[1].split(".", 1)
                cc = (int(major), int(minor))
            except ValueError:
                cc = None
        drv = cells[-1] if len(cells) > 1 else None
        rows.append((cells[0], cc, drv))
    return rows


def probe_nvidia_smi(run: Callable[[List[str]], Tuple[int, str]] = None) -> Optional[GpuInfo]:
    """None when nvidia-smi is absent; otherwise what it lists."""
    if run is None:
        if shutil.which("nvidia-smi") is None:
            return None
        run = _run_cmd
    with_cc = True
    rc, out = run(["nvidia-smi", "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"])
    if rc != 0:  # drivers before ~510 do not know compute_cap
        with_cc = False
        rc, out = run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"])
    if rc != 0:
        return GpuInfo(False, f"nvidia-smi failed: {out.strip()[:200]}", source="nvidia-smi")
    rows = parse_nvidia_smi_csv(out, with_cc)
    if not rows:
        return GpuInfo(False, "nvidia-smi lists no GPU", source="nvidia-smi")
    name, cc, drv = rows[0]
    return GpuInfo(True, f"nvidia-smi lists {len(rows)} GPU(s); CUDA runtime not checked (cuda-python missing)",
                   name=name, compute_capability=cc, driver_version=drv, device_count=len(rows),
                   source="nvidia-smi")


def probe_proc(root: str = "/proc/driver/nvidia") -> Optional[GpuInfo]:
    """None without the NVIDIA kernel driver; otherwise the GPUs it has bound."""
    if not os.path.isdir(root):
        return None
    infos = sorted(glob.glob(os.path.join(root, "gpus", "*", "information")))
    if not infos:
        return GpuInfo(False, f"NVIDIA driver loaded but {root}/gpus is empty", source="proc")
    name = None
    try:
        with open(infos[0], encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("Model:"):
                    name = line.split(":", 1)[1].strip()
    except OSError:
        pass
    drv = None
    try:
        with open(os.path.join(root, "version"), encoding="utf-8", errors="replace") as f:
            words = f.readline().split()
        drv = next((w for w in words if w[:1].isdigit() and "." in w), None)
    except OSError:
        pass
    return GpuInfo(True, f"kernel driver has {len(infos)} GPU(s); CUDA runtime not checked (cuda-python missing)",
                   name=name, driver_version=drv, device_count=len(infos), source="proc")


def _run_cmd(cmd: List[str]) -> Tuple[int, str]:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return p.returncode, p.stdout if p.returncode == 0 else (p.stderr or p.stdout)


def probe_gpu_uncached(probes=None) -> GpuInfo:
    if os.environ.get("CKD_DISABLE_GPU", "").lower() in ("1", "true", "yes"):
        return GpuInfo(False, "disabled by CKD_DISABLE_GPU")
    probes = probes if probes is not None else (probe_cuda_python, probe_nvidia_smi, probe_proc)
    tried = []
    for probe in probes:
        info = probe()
        if info is None:
            tried.append(probe.__name__.replace("probe_", ""))
            continue
        return dataclasses.replace(info, l4t_release=read_l4t_release())
    return GpuInfo(False, "no NVIDIA driver found (checked: " + ", ".join(tried) + ")",
                   l4t_release=read_l4t_release())


@functools.lru_cache(maxsize=1)
def probe_gpu() -> GpuInfo:
    """Probe once per process (probe_gpu.cache_clear() to ask again)."""
    return probe_gpu_uncached()
