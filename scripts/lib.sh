# shellcheck shell=bash disable=SC2034
# Sourced by the scripts: the toolchain the kernel's Rust support needs.
# Debian's rustc-web (1.96, with rust-web-src) is /usr/bin/rustc; the rustup
# toolchain earlier on PATH has no rust-src and cannot build kernel Rust.
PVPASS_KMAKE_VARS=(LLVM=-19 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc HOSTRUSTC=/usr/bin/rustc BINDGEN=/usr/local/bin/bindgen)
export LIBCLANG_PATH=/usr/lib/llvm-19/lib
