# Sourced by the scripts in this folder: checks the Rust toolchain and
# installs what kernel-host needs (the wasm32-wasip2 target), or stops with
# a message saying what to do.

die() {
    echo "error: $*" >&2
    exit 1
}

command -v cargo >/dev/null 2>&1 || die "cargo is not installed. Install Rust with rustup (https://rustup.rs), then run this again."
command -v rustc >/dev/null 2>&1 || die "rustc is not installed. Install Rust with rustup (https://rustup.rs), then run this again."

rust_version=$(rustc --version | awk '{print $2}')
IFS=. read -r major minor _ <<<"$rust_version"
if [ "${major:-0}" -lt 1 ] || { [ "$major" -eq 1 ] && [ "${minor:-0}" -lt 95 ]; }; then
    die "kernel-host needs Rust 1.95 or newer, found $rust_version. Run \`rustup update\`."
fi

# The kernels are WebAssembly components: they need the wasm32-wasip2 target.
if ! rustc --print target-libdir --target wasm32-wasip2 2>/dev/null | xargs -r test -d; then
    command -v rustup >/dev/null 2>&1 ||
        die "the wasm32-wasip2 target is missing and rustup is not available to add it. Install it for your toolchain, then run this again."
    echo "installing the wasm32-wasip2 target (rustup target add wasm32-wasip2)..." >&2
    rustup target add wasm32-wasip2 >&2 || die "could not install the wasm32-wasip2 target (see above)."
fi

# Build guests without the caller's RUSTFLAGS, exactly as the test build does,
# so both share target/guests.
KERNELS=(standard-scaler simple-imputer one-hot-encoder logistic-regression ridge-regression k-means sgd-classifier mlp-classifier pca)
build_kernels() {
    local args=()
    for k in "${KERNELS[@]}"; do args+=(-p "$k"); done
    env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS -u CARGO_TARGET_DIR \
        cargo build --release --target wasm32-wasip2 --target-dir target/guests "${args[@]}"
}
