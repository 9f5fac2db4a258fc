#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Check that the C glue's header and the Rust declarations agree.

src/glue/glue.h declares the C functions Rust calls and the Rust functions C
calls (pvpass_rs_*). Rust declares the former once, in src/glue/mod.rs, and
defines the latter with #[no_mangle] under src/. This compares, for every
function: that it exists on both sides, its parameter count, and each
parameter's and the return's type through the table below (a C struct
pointer must be the Rust opaque handle of that struct). Exit 1 and say what
differs otherwise.

    scripts/check-glue.py [repo root]
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")

# C type -> Rust type, as written in the declarations (whitespace removed).
TYPES = {
    "void": "()",
    "bool": "bool",
    "int": "i32",
    "u8*": "*mut u8",
    "u32": "u32",
    "u64": "u64",
    "u64*": "*mut u64",
    "void*": "*mut c_void",
    "constvoid*": "*const c_void",
    "void*const*": "*const *mut c_void",
    "constchar*": "*const c_char",
    "structfile*": "*mut File",
    "structpvpass_mmio*": "*mut Mmio",
    "structkvm_vcpu*": "*mut Vcpu",
    "structeventfd_ctx*": "*mut EventfdCtx",
    "structpvpass_watch*": "*mut Watch",
    "structpvpass_resample*": "*mut Resample",
    "structpage*": "*mut Page",
    "structpvpass_hostport*": "*mut HostPort",
    "structsk_buff*": "*mut SkBuff",
    "structsk_buff**": "*mut *mut SkBuff",
    "structmm_struct*": "*mut MmStruct",
    "structpvpass_slot*": "*mut RawSlot",
    "structpvpass_vwork*": "*mut VWork",
    "structpvpass_kick*": "*mut Kick",
    "structpvpass_poll*": "*mut Poll",
    "structpci_dev*": "*mut PciDev",
    "structpvpass_nicport*": "*mut NicPort",
    "constu8*": "*const u8",
    "char*": "*mut c_char",
}
# Callbacks: Rust may take its context as `*const c_void` (it only reads
# through it) where C passes `void *`, and an `int` as `c_int`.
EQUIV = {("*mut c_void", "*const c_void"), ("i32", "c_int")}


def norm_rust(t):
    t = re.sub(r"\s+", " ", t.strip())
    t = re.sub(r"\b(glue|core::ffi|kernel::ffi)::", "", t)
    return t or "()"


def c_decls(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out = {}
    for m in re.finditer(r"^([A-Za-z_][\w \*]*?)\b(pvpass_\w+)\s*\(([^;{]*?)\)\s*;", text, re.M | re.S):
        ret, name, params = m.group(1), m.group(2), m.group(3)
        ps = []
        if params.strip() != "void":
            for p in params.split(","):
                p = re.sub(r"\s+", " ", p.strip())
                # Drop the parameter name.
                p = re.sub(r"\b\w+$", "", p).replace(" ", "")
                ps.append(p)
        out[name] = (ret.replace(" ", ""), ps)
    return out


def rust_fns(text, extern_only):
    out = {}
    if extern_only:
        blocks = re.findall(r'extern "C" \{(.*?)\n\}', text, re.S)
        text = "\n".join(blocks)
        pat = r"fn (\w+)\s*\((.*?)\)\s*(?:->\s*([^;]+?))?\s*;"
    else:
        pat = r'#\[no_mangle\]\s*(?:pub(?:\(crate\))? )?(?:unsafe )?extern "C" fn (\w+)\s*\((.*?)\)\s*(?:->\s*([^{]+?))?\s*\{'
    for m in re.finditer(pat, text, re.S):
        name, params, ret = m.group(1), m.group(2), m.group(3) or ""
        ps = [norm_rust(p.split(":", 1)[1]) for p in params.split(",") if ":" in p]
        out[name] = (norm_rust(ret), ps)
    return out


def main():
    c = c_decls((root / "src/glue/glue.h").read_text())
    declared = rust_fns((root / "src/glue/mod.rs").read_text(), True)
    defined = {}
    for f in sorted((root / "src").rglob("*.rs")):
        defined.update(rust_fns(f.read_text(), False))
    errors = []
    for name, (cret, cps) in sorted(c.items()):
        side = defined if name.startswith("pvpass_rs_") else declared
        where = "defined with #[no_mangle] under src/" if side is defined else "declared in src/glue/mod.rs"
        if name not in side:
            errors.append(f"{name}: in glue.h, not {where}")
            continue
        rret, rps = side[name]
        if len(cps) != len(rps):
            errors.append(f"{name}: {len(cps)} parameters in glue.h, {len(rps)} in Rust")
            continue
        for i, (ct, rt) in enumerate([(cret, rret)] + list(zip(cps, rps))):
            want = TYPES.get(ct)
            what = "return type" if i == 0 else f"parameter {i}"
            if want is None:
                errors.append(f"{name}: {what}: C type '{ct}' not in check-glue.py's table")
            elif rt != want and (want, rt) not in EQUIV:
                errors.append(f"{name}: {what}: C '{ct}' wants Rust '{want}', found '{rt}'")
    for name in sorted(declared):
        if name.startswith("pvpass_") and name not in c:
            errors.append(f"{name}: declared in src/glue/mod.rs, not in glue.h")
    for name in sorted(defined):
        if name.startswith("pvpass_rs_") and name not in c:
            errors.append(f"{name}: defined in Rust, not in glue.h")
    for e in errors:
        print(e)
    print(f"glue.h: {len(c)} functions, {len(errors)} mismatches")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
