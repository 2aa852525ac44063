#!/usr/bin/env bash
# The crates.io publishing flow of the workspace.
#
#   scripts/packages.sh [--name GLOB] [--pre] [--dry-run] [--no-verify] [--allow-dirty]
#
# Lists the publishable crates in dependency order with their versions, checks each (metadata,
# README, the files `cargo package` would ship, the version not yet on crates.io), then:
#   --dry-run    runs `cargo publish --dry-run` for the selection, in order, as one workspace publish
#                (so internal dependencies not yet on the registry resolve), and says what would go out;
#   otherwise    refuses unless a registry token is present, then publishes in order, stopping at the
#                first failure.
#
#   --name GLOB  only crates whose name matches (shell glob, e.g. 'pnet*')
#   --pre        include crates whose version is a pre-release (1.0.0-rc.1); left out otherwise
#   --no-verify  do not build the packaged crates (cargo publish --no-verify); CI uses it
#   --allow-dirty  package uncommitted changes (a working tree; a clean clone needs no such thing)
#
# Exit codes: 0 all good; 1 a check or a publish failed (the message names the crate and the check);
# 2 bad usage or a missing tool.
set -euo pipefail
cd "$(dirname "$0")/.."

name_glob='*'
pre=0
dry_run=0
verify=1
allow_dirty=0
while [ $# -gt 0 ]; do
    case "$1" in
        --name)
            [ $# -ge 2 ] || { echo "packages.sh: --name needs a glob" >&2; exit 2; }
            name_glob="$2"
            shift 2
            ;;
        --name=*) name_glob="${1#--name=}"; shift ;;
        --pre) pre=1; shift ;;
        --dry-run) dry_run=1; shift ;;
        --no-verify) verify=0; shift ;;
        --allow-dirty) allow_dirty=1; shift ;;
        -h|--help)
            sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) echo "packages.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

command -v cargo >/dev/null 2>&1 || { echo "packages.sh: cargo is missing" >&2; exit 2; }
command -v python3 >/dev/null 2>&1 || { echo "packages.sh: python3 is missing" >&2; exit 2; }

# --- the selection, in dependency order ----------------------------------------------------------
metadata=$(cargo metadata --format-version 1 --no-deps --locked)
selection=$(PRE="$pre" GLOB="$name_glob" python3 -c '
import fnmatch, json, os, sys
meta = json.load(sys.stdin)
pkgs = {p["name"]: p for p in meta["packages"] if p["id"] in meta["workspace_members"]}
# `publish = false` is an empty list; null means any registry.
publishable = {n: p for n, p in pkgs.items() if p.get("publish") is None or p["publish"]}
def internal(p):
    return sorted({d["name"] for d in p["dependencies"]
                   if d["name"] in publishable and d.get("kind") in (None, "build")})
order, state = [], {}
def visit(n):
    if state.get(n) == "done":
        return
    if state.get(n) == "visiting":
        sys.exit(f"packages.sh: dependency cycle through {n}")
    state[n] = "visiting"
    for d in internal(publishable[n]):
        visit(d)
    state[n] = "done"
    order.append(n)
for n in sorted(publishable):
    visit(n)
glob, pre = os.environ["GLOB"], os.environ["PRE"] == "1"
for n in order:
    p = publishable[n]
    if not fnmatch.fnmatchcase(n, glob):
        continue
    is_pre = "-" in p["version"]
    if is_pre and not pre:
        continue
    deps = ",".join(internal(p)) or "-"
    print(n, p["version"], os.path.dirname(p["manifest_path"]), deps, "pre" if is_pre else "release")
' <<<"$metadata")

if [ -z "$selection" ]; then
    echo "packages.sh: no publishable crate matches --name '$name_glob'$([ "$pre" -eq 1 ] || echo ' (pre-releases left out; --pre includes them)')" >&2
    exit 1
fi

echo "publish order:"
n=0
while read -r crate version _dir deps kind; do
    n=$((n + 1))
    echo "  $n. $crate $version ($kind; depends on: ${deps//,/, })"
done <<<"$selection"

# --- checks ----------------------------------------------------------------------------------------
failed=0
fail() {
    echo "packages.sh: $1: $2" >&2
    failed=1
}
dirty_flag=()
[ "$allow_dirty" -eq 1 ] && dirty_flag=(--allow-dirty)

echo
echo "checks:"
while read -r crate version dir _deps _kind; do
    # Metadata crates.io shows (cargo refuses to publish without description and license).
    missing=$(CRATE="$crate" python3 -c '
import json, os, sys
meta = json.load(sys.stdin)
p = next(p for p in meta["packages"] if p["name"] == os.environ["CRATE"])
need = {"description": p.get("description"), "license": p.get("license"),
        "repository": p.get("repository"), "documentation": p.get("documentation"),
        "readme": p.get("readme"), "keywords": p.get("keywords"),
        "categories": p.get("categories"), "rust-version": p.get("rust_version")}
print(" ".join(k for k, v in need.items() if not v))
' <<<"$metadata")
    if [ -n "$missing" ]; then
        fail "$crate" "metadata incomplete: missing $missing"
        continue
    fi
    readme=$(CRATE="$crate" python3 -c '
import json, os, sys
meta = json.load(sys.stdin)
print(next(p for p in meta["packages"] if p["name"] == os.environ["CRATE"])["readme"])
' <<<"$metadata")
    case "$readme" in /*) ;; *) readme="$dir/$readme" ;; esac
    if [ ! -s "$readme" ]; then
        fail "$crate" "README $readme is missing or empty"
        continue
    fi
    # What would ship: no build output, benchmark artifacts or oversized fixtures.
    if ! list=$(cargo package --list -p "$crate" --locked "${dirty_flag[@]}" 2>&1); then
        fail "$crate" "cargo package --list failed: $(tail -n 3 <<<"$list")"
        continue
    fi
    stray=$(grep -E '^(target|artifacts)/|(^|/)\.(git|idea|vscode)/|\.(json|html)\.orig$' <<<"$list" || true)
    if [ -n "$stray" ]; then
        fail "$crate" "would ship stray files: $(tr '\n' ' ' <<<"$stray")"
        continue
    fi
    big=""
    while read -r f; do
        [ -f "$dir/$f" ] || continue
        size=$(stat -c %s "$dir/$f")
        [ "$size" -gt 1048576 ] && big+="$f ($size bytes) "
    done <<<"$list"
    if [ -n "$big" ]; then
        fail "$crate" "would ship files over 1 MiB: $big"
        continue
    fi
    # The version must be free on crates.io (a registry lookup; nothing else leaves this machine).
    if info=$(cargo info "$crate@$version" --registry crates-io 2>&1); then
        fail "$crate" "version $version is already on crates.io; bump it in the workspace Cargo.toml"
        continue
    elif grep -q "could not find" <<<"$info"; then
        :
    else
        fail "$crate" "cannot ask crates.io whether $version is taken: $(tail -n 1 <<<"$info")"
        continue
    fi
    echo "  $crate $version: metadata, README, $(wc -l <<<"$list") packaged files, version free: ok"
done <<<"$selection"
[ "$failed" -eq 0 ] || exit 1

# --- publish ---------------------------------------------------------------------------------------
crates=()
while read -r crate _rest; do crates+=(-p "$crate"); done <<<"$selection"
verify_flag=()
[ "$verify" -eq 0 ] && verify_flag=(--no-verify)

if [ "$dry_run" -eq 1 ]; then
    echo
    echo "dry run: cargo publish --dry-run ${crates[*]} ${verify_flag[*]} ${dirty_flag[*]}"
    if ! out=$(cargo publish --dry-run --locked "${crates[@]}" "${verify_flag[@]}" "${dirty_flag[@]}" 2>&1); then
        echo "$out" | tail -n 20 >&2
        crate=$(grep -oE 'Packaging [a-z0-9_-]+|Verifying [a-z0-9_-]+|Uploading [a-z0-9_-]+' <<<"$out" | tail -n 1 | awk '{print $2}')
        fail "${crate:-the selection}" "cargo publish --dry-run failed (output above)"
        exit 1
    fi
    grep -E '^\s*(Packaged|Packaging|Verifying|Uploading)' <<<"$out" | sed 's/^ */  /' || true
    echo "would publish, in this order: $(awk '{print $1 " " $2}' <<<"$selection" | paste -sd, - | sed 's/,/, /g')"
    exit 0
fi

token="${CARGO_REGISTRY_TOKEN:-}"
if [ -z "$token" ] && ! grep -qs 'token' "${CARGO_HOME:-$HOME/.cargo}/credentials.toml"; then
    echo "packages.sh: refusing to publish: no registry token (set CARGO_REGISTRY_TOKEN or run cargo login); use --dry-run to check" >&2
    exit 1
fi
while read -r crate version _rest; do
    echo "publishing $crate $version"
    if ! cargo publish --locked -p "$crate" "${verify_flag[@]}" "${dirty_flag[@]}"; then
        fail "$crate" "cargo publish failed; the crates before it are published, the rest are not"
        exit 1
    fi
done <<<"$selection"
echo "published: $(awk '{print $1 " " $2}' <<<"$selection" | paste -sd, - | sed 's/,/, /g')"
