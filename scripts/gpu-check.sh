#!/usr/bin/env bash
# The CUDA check: on a machine with an NVIDIA GPU, run every tensor
# operation on the CUDA backend against an f64 reference
# (`kernel-host info --selftest`) and the tensor benchmark (API vs raw
# cuBLAS, MLP step CPU vs GPU), printing short tables.
#
#   scripts/gpu-check.sh --prepare   # on the build machine (no GPU needed):
#                                    # builds and collects everything in target/gpu-check/
#   scripts/gpu-check.sh             # on the GPU machine: runs what --prepare collected
#                                    # (or builds first, when cargo is there and nothing was collected)
#
# The binaries load CUDA at run time (driver, cuBLAS, NVRTC 13 or 12): the
# script adds /usr/local/cuda/lib64 (and $CUDA_HOME/lib64) to LD_LIBRARY_PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/gpu-check

prepare() {
    source scripts/toolchain.sh
    cargo build --release -p kernel-host-cli --bin kernel-host
    local bench
    bench=$(cargo bench --bench tensor --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "tensor":
        print(m["executable"])' | tail -1)
    [ -n "$bench" ] || { echo "gpu-check: could not build the tensor benchmark" >&2; exit 1; }
    rm -rf "$out" && mkdir -p "$out/guests"
    cp target/release/kernel-host "$out/"
    cp "$bench" "$out/tensor-bench"
    cp target/guests/wasm32-wasip2/release/{tensor_probe,mlp_classifier}.wasm "$out/guests/"
    strip "$out/kernel-host" "$out/tensor-bench" 2>/dev/null || true
    du -sh "$out"
    echo "gpu-check: prepared $out; run scripts/gpu-check.sh on the GPU machine"
}

if [ "${1:-}" = "--prepare" ]; then
    prepare
    exit 0
fi
if [ ! -x "$out/kernel-host" ]; then
    command -v cargo >/dev/null || { echo "gpu-check: nothing prepared in $out and no cargo to build with; run scripts/gpu-check.sh --prepare first" >&2; exit 1; }
    prepare
fi

for dir in "${CUDA_HOME:-/usr/local/cuda}/lib64" /usr/local/cuda/lib64 /usr/lib/x86_64-linux-gnu; do
    [ -d "$dir" ] && export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
# cuBLAS and NVRTC may come only as Python wheels (nvidia-cublas, nvidia-cuda-nvrtc)
# or in a versioned toolkit folder: add each folder that holds one and is not on the path yet.
for lib in libcublas.so libcublasLt.so libnvrtc.so; do
    ldconfig -p 2>/dev/null | grep -q "$lib" && continue
    found=$(find /usr/local/cuda* /usr/lib /opt /usr/local/lib -maxdepth 8 -name "$lib*" 2>/dev/null | head -1 || true)
    if [ -n "$found" ]; then
        dir=$(dirname "$found")
        case ":${LD_LIBRARY_PATH:-}:" in *":$dir:"*) ;; *) export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;; esac
    fi
done
echo "gpu-check: LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "gpu-check: no nvidia-smi"

echo "== tensor backends and the selftest (every op vs f64, tolerance 1e-5)"
status=0
"$out/kernel-host" info --selftest || status=$?

echo "== tensor benchmark"
export KERNEL_HOST_GUESTS_DIR="$PWD/$out/guests" KERNEL_HOST_CACHE_DIR="$PWD/$out/cache"
"$out/tensor-bench" || status=$?
exit $status
