"""Is there an NVIDIA GPU we may hand to TensorRT, and can the TensorRT runner talk to it?

Creating a TensorRT runtime without a usable GPU logs CUDA error 35 and the next call segfaults, so
every TensorRT path asks `probe_gpu()` first. The probe never imports torch or cuda-python: the GPU
question is answered by the driver itself, so a cuda-python that cannot talk to the driver (e.g.
cuda-bindings 13 on a CUDA 12 driver) no longer reads as "no GPU" (issue 17.2). Sources, most
authoritative first:

1. the CUDA driver API through ctypes (`libcuda.so.1`: cuDriverGetVersion, cuInit, cuDeviceGetCount,
   name, compute capability, SM count): final when the library loads;
2. `nvidia-smi`: the driver sees a GPU (libcuda not loadable, so TensorRT cannot run);
3. `/proc/driver/nvidia/gpus/*/information`: the kernel driver has a GPU bound.

cuda-python is checked separately (`check_cuda_python`), only where the TensorRT runner needs it,
with an install line matching the driver's CUDA version. `device_identity()` is the one normalised
device identity the engine cache key uses (nothing from binding versions).

Set CKD_DISABLE_GPU=1 to force the CPU paths (tests, debugging).
"""
from __future__ import annotations

import ctypes
import dataclasses
import functools
import glob
import importlib.metadata
import os
import re
import shutil
import subprocess
from typing import Callable, Dict, List, Optional, Tuple

TEGRA_RELEASE = "/etc/nv_tegra_release"
DEVICE_TREE_MODEL = "/proc/device-tree/model"
# CUdevice_attribute values (cuda.h, stable since CUDA 2.x/3.x)
CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
CU_RESULT_NAMES = {0: "CUDA_SUCCESS", 3: "CUDA_ERROR_NOT_INITIALIZED", 34: "CUDA_ERROR_STUB_LIBRARY",
                   35: "CUDA_ERROR_INSUFFICIENT_DRIVER", 100: "CUDA_ERROR_NO_DEVICE", 101: "CUDA_ERROR_INVALID_DEVICE",
                   304: "CUDA_ERROR_OPERATING_SYSTEM", 803: "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
                   804: "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE", 999: "CUDA_ERROR_UNKNOWN"}


@dataclasses.dataclass(frozen=True)
class GpuInfo:
    """What the probe found. driver_version is the CUDA version the driver supports ("12.2"), not
    the kernel module's version; kernel_driver is that ("540.3.0", from nvidia-smi//proc)."""
    available: bool
    reason: str
    name: Optional[str] = None
    compute_capability: Optional[Tuple[int, int]] = None
    driver_version: Optional[str] = None
    device_count: int = 0
    source: str = "none"
    l4t_release: Optional[str] = None
    sm_count: Optional[int] = None
    jetson_model: Optional[str] = None
    kernel_driver: Optional[str] = None

    @property
    def sm(self) -> Optional[str]:
        cc = self.compute_capability
        return f"{cc[0]}.{cc[1]}" if cc else None

    @property
    def is_jetson(self) -> bool:
        return bool(self.l4t_release or self.jetson_model)

    def describe(self) -> str:
        if not self.available:
            return f"no GPU ({self.reason})"
        parts = [self.jetson_model or self.name or "NVIDIA GPU"]
        if self.sm:
            parts.append(f"sm {self.sm}")
        if self.sm_count:
            parts.append(f"{self.sm_count} SMs")
        if self.driver_version:
            parts.append(f"driver CUDA {self.driver_version}")
        elif self.kernel_driver:
            parts.append(f"driver {self.kernel_driver}")
        if self.l4t_release:
            parts.append(f"L4T {self.l4t_release}")
        return ", ".join(parts)


def cuda_version_str(v: int) -> str:
    """CUDA encodes versions as 1000*major + 10*minor (12040 -> '12.4')."""
    return f"{v // 1000}.{(v % 1000) // 10}"


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


def read_jetson_model(path: str = DEVICE_TREE_MODEL) -> Optional[str]:
    """'NVIDIA Jetson AGX Orin Developer Kit' from the device tree on Jetson; None elsewhere."""
    try:
        with open(path, "rb") as f:
            raw = f.read(256)
    except OSError:
        return None
    text = raw.split(b"\0", 1)[0].decode(errors="replace").strip()
    return text if "jetson" in text.lower() else None


def load_libcuda():
    """The CUDA driver library (ctypes.CDLL), or None where no NVIDIA driver is installed."""
    try:
        return ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None


def _cu_name(rc: int) -> str:
    return CU_RESULT_NAMES.get(int(rc), f"CUresult {int(rc)}")


def probe_driver(lib=None) -> Optional[GpuInfo]:
    """Ask the CUDA driver API (libcuda.so.1 via ctypes; `lib` injectable for tests).

    None when libcuda.so.1 is not loadable (then nvidia-smi / /proc decide). Otherwise device 0's
    name, compute capability, SM count and the driver's CUDA version, or the CUresult that failed.
    """
    lib = lib if lib is not None else load_libcuda()
    if lib is None:
        return None
    try:
        ver = ctypes.c_int(0)
        drv = cuda_version_str(ver.value) if lib.cuDriverGetVersion(ctypes.byref(ver)) == 0 and ver.value else None
        rc = lib.cuInit(0)
        if rc != 0:
            why = "no NVIDIA GPU visible" if rc == 100 else "the driver cannot be used"
            return GpuInfo(False, f"CUDA driver: cuInit failed ({_cu_name(rc)}: {why})", driver_version=drv,
                           source="driver")
        count = ctypes.c_int(0)
        rc = lib.cuDeviceGetCount(ctypes.byref(count))
        if rc != 0:
            return GpuInfo(False, f"CUDA driver: cuDeviceGetCount failed ({_cu_name(rc)})", driver_version=drv,
                           source="driver")
        if count.value < 1:
            return GpuInfo(False, "CUDA driver reports 0 devices", driver_version=drv, source="driver")
        dev = ctypes.c_int(0)
        rc = lib.cuDeviceGet(ctypes.byref(dev), 0)
        if rc != 0:
            return GpuInfo(False, f"CUDA driver: cuDeviceGet failed ({_cu_name(rc)})", driver_version=drv,
                           source="driver")
        buf = ctypes.create_string_buffer(256)
        name = buf.value.decode(errors="replace").strip() if lib.cuDeviceGetName(buf, 256, dev) == 0 else None
        attrs = {}
        for key, attr in (("major", CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
                          ("minor", CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR),
                          ("sms", CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)):
            val = ctypes.c_int(0)
            attrs[key] = val.value if lib.cuDeviceGetAttribute(ctypes.byref(val), attr, dev) == 0 else None
    except (AttributeError, OSError, ValueError) as exc:  # a broken or foreign libcuda
        return GpuInfo(False, f"CUDA driver probe failed: {exc}", source="driver")
    cc = (attrs["major"], attrs["minor"]) if attrs["major"] is not None and attrs["minor"] is not None else None
    return GpuInfo(True, f"CUDA driver sees {count.value} device(s)", name=name or None, compute_capability=cc,
                   driver_version=drv, device_count=int(count.value), source="driver", sm_count=attrs["sms"])


def device_identity(gpu: GpuInfo) -> Dict[str, str]:
    """The one normalised device identity for engine cache keys (issue 17.7): GPU name, compute
    capability, SM count, Jetson model (device tree), the driver's CUDA version, L4T release.
    Nothing from binding versions (cuda-python, TensorRT's Python package) or from which probe
    answered; 'none' for an ahead-of-time build without a GPU (TensorRT-RTX)."""
    if not gpu.available:
        return {"gpu_name": "none", "compute_capability": "none", "sm_count": "none",
                "jetson_model": gpu.jetson_model or "none", "cuda_driver": "none",
                "l4t_release": gpu.l4t_release or "none"}
    name = re.sub(r"\s+", " ", (gpu.name or "unknown").strip())
    return {"gpu_name": name, "compute_capability": gpu.sm or "unknown",
            "sm_count": str(gpu.sm_count) if gpu.sm_count else "unknown",
            "jetson_model": gpu.jetson_model or "none", "cuda_driver": gpu.driver_version or "unknown",
            "l4t_release": gpu.l4t_release or "none"}


# ---- what the TensorRT runner needs beyond the GPU: cuda-python, and install lines ----------------

def _dist_version(*names: str) -> Optional[str]:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def cuda_python_version() -> Optional[str]:
    """Installed cuda-python / cuda-bindings version ('13.0.1'), None when absent."""
    return _dist_version("cuda-bindings", "cuda-python")


def _major_minor(version: Optional[str]) -> Optional[Tuple[int, int]]:
    m = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def cuda_python_hint(gpu: GpuInfo) -> str:
    """pip line for the cuda-python that matches the driver's CUDA version (JetPack 6: 12.2 / 12.6,
    not the newest 12.x; JetPack 5, CUDA 11.4: 11.5-11.x, PyPI has no older 11.x)."""
    mm = _major_minor(gpu.driver_version)
    if mm is None:
        return "pip install cuda-python matching your driver's CUDA version (nvidia-smi shows it)"
    if mm[0] <= 11:  # PyPI's oldest 11.x is 11.5; CUDA 11 minor-version compatibility covers 11.4
        return "pip install 'cuda-python>=11.5,<12'"
    return f"pip install 'cuda-python>={mm[0]}.{mm[1]},<{mm[0]}.{mm[1] + 1}'"


def tensorrt_hint(gpu: GpuInfo) -> str:
    """Install line for TensorRT bindings that match the driver (plain `pip install tensorrt` today
    brings CUDA-13 builds and TensorRT 11, which crash on drivers below 580)."""
    if gpu.is_jetson:
        return "sudo apt install python3-libnvinfer (JetPack's TensorRT; PyPI wheels do not fit Jetson)"
    mm = _major_minor(gpu.driver_version)
    if mm is None:
        return "pip install the tensorrt-cuXX wheel matching your driver's CUDA major (nvidia-smi shows it)"
    if mm[0] <= 11:
        return "pip install 'tensorrt-cu11<10.1'"
    if mm[0] == 12:
        return "pip install 'tensorrt-cu12<11'"
    return f"pip install 'tensorrt-cu{mm[0]}'"


def installed_tensorrt_cuda_major() -> Optional[int]:
    """CUDA major the pip TensorRT wheel was built for (tensorrt-cu12 / -cu13 ...), None if unknown
    (apt TensorRT on Jetson, or not installed)."""
    for major in (13, 12, 11):
        if _dist_version(f"tensorrt-cu{major}", f"tensorrt_cu{major}_libs", f"tensorrt-cu{major}-libs"):
            return major
    return None


def check_cuda_python(gpu: GpuInfo, cudart=None, version: Optional[str] = None) -> Optional[str]:
    """None when cuda-python can drive this GPU; else one line saying what is wrong and the pip line.

    cudart / version injectable for tests. Checks the major version against the driver's, then
    asks the runtime for the device count (cudaErrorInsufficientDriver when the bindings' CUDA is
    newer than the driver)."""
    from ckd_ros.runtime.cuda_mem import import_cudart

    cudart = cudart if cudart is not None else import_cudart()
    hint = cuda_python_hint(gpu)
    if cudart is None:
        return f"cuda-python not installed (the TensorRT runner needs it): {hint}"
    version = version or cuda_python_version() or "?"
    have, drv = _major_minor(version), _major_minor(gpu.driver_version)
    incompatible = f"GPU present, cuda-python {version} incompatible with driver {gpu.driver_version}: {hint}"
    if have and drv and have[0] > drv[0]:
        return incompatible
    try:
        out = cudart.cudaGetDeviceCount()
    except Exception as exc:  # a broken install
        return f"cuda-python {version} is broken ({exc}): {hint}"
    err = out[0]
    if int(err) != int(cudart.cudaError_t.cudaSuccess):
        name = getattr(err, "name", str(err))
        if "InsufficientDriver" in name:
            return incompatible
        return f"GPU present, but cuda-python {version} cannot use it ({name}): {hint}"
    return None


def tensorrt_problems(gpu: GpuInfo, trt_module: str = "tensorrt", cudart=None) -> List[str]:
    """Everything the TensorRT backend needs at run time that is missing here (empty: usable).
    Checked before `auto` chooses TensorRT and before a build starts (issue 17.3)."""
    import importlib.util

    if not gpu.available:
        return [f"no usable GPU: {gpu.reason}"]
    problems = []
    try:
        have_trt = importlib.util.find_spec(trt_module) is not None
    except (ImportError, ValueError):
        have_trt = False
    if not have_trt:
        problems.append(f"TensorRT Python module '{trt_module}' not installed: {tensorrt_hint(gpu)}")
    else:
        wheel = installed_tensorrt_cuda_major()
        drv = _major_minor(gpu.driver_version)
        if wheel and drv and wheel > drv[0]:
            problems.append(f"the TensorRT wheel is built for CUDA {wheel}, the driver supports CUDA "
                            f"{gpu.driver_version}: pip uninstall tensorrt-cu{wheel}; {tensorrt_hint(gpu)}")
    cp = check_cuda_python(gpu, cudart)
    if cp:
        problems.append(cp)
    return problems


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
    return GpuInfo(False, f"nvidia-smi lists {len(rows)} GPU(s) ({name}) but libcuda.so.1 cannot be loaded "
                   "(TensorRT needs it): install the NVIDIA driver's CUDA library",
                   name=name, compute_capability=cc, kernel_driver=drv, device_count=len(rows),
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
    return GpuInfo(False, f"the kernel driver has {len(infos)} GPU(s) but libcuda.so.1 cannot be loaded "
                   "(TensorRT needs it): install the NVIDIA driver's CUDA library",
                   name=name, kernel_driver=drv, device_count=len(infos), source="proc")


def _run_cmd(cmd: List[str]) -> Tuple[int, str]:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return p.returncode, p.stdout if p.returncode == 0 else (p.stderr or p.stdout)


def probe_gpu_uncached(probes=None) -> GpuInfo:
    """Ask the sources in order (default: driver API, nvidia-smi, /proc); the first that answers
    decides. Adds the L4T release and Jetson model on Jetson."""
    jetson = dict(l4t_release=read_l4t_release(), jetson_model=read_jetson_model())
    if os.environ.get("CKD_DISABLE_GPU", "").lower() in ("1", "true", "yes"):
        return GpuInfo(False, "disabled by CKD_DISABLE_GPU", **jetson)
    probes = probes if probes is not None else (probe_driver, probe_nvidia_smi, probe_proc)
    tried = []
    for probe in probes:
        info = probe()
        if info is None:
            tried.append(probe.__name__.replace("probe_", ""))
            continue
        return dataclasses.replace(info, **jetson)
    return GpuInfo(False, "no NVIDIA driver installed (checked: " + ", ".join(tried) + ")", **jetson)


@functools.lru_cache(maxsize=1)
def probe_gpu() -> GpuInfo:
    """Probe once per process (probe_gpu.cache_clear() to ask again)."""
    return probe_gpu_uncached()
