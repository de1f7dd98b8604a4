#!/usr/bin/env bash
# Builds every Rust plugin as a WebAssembly component and puts it where the
# host and its tests look for it:
#   plugins/NAME        -> target/plugins/NAME.wasm        (the examples)
#   tests/plugins/NAME  -> target/test-plugins/NAME.wasm   (purpose-made bad plugins)
# then runs scripts/build-other-plugins.sh, if present, for the Python and
# JavaScript plugins. Idempotent, and runnable from any directory.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

readonly wasm_target=wasm32-wasip2
readonly profile=plugin

if command -v rustup >/dev/null 2>&1; then
    rustup target add "$wasm_target" >/dev/null
fi

# Wherever cargo puts its output (the workspace's target/ unless the caller
# set CARGO_TARGET_DIR).
target_dir="$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"

# A Rust plugin is a folder with a Cargo.toml; `plugins/` also holds the
# Python and JavaScript plugins, which are not.
package_name() {
    sed -n 's/^name *= *"\(.*\)"/\1/p' "$1/Cargo.toml" | head -n 1
}

examples=()
for dir in plugins/*/; do
    [[ -f "$dir/Cargo.toml" ]] && examples+=("$(package_name "$dir")")
done
bad_plugins=()
for dir in tests/plugins/*/; do
    [[ -f "$dir/Cargo.toml" ]] && bad_plugins+=("$(package_name "$dir")")
done

packages=()
for name in "${examples[@]}" "${bad_plugins[@]}"; do
    packages+=(--package "$name")
done
cargo build --target "$wasm_target" --profile "$profile" "${packages[@]}"

# The host watches target/plugins: copy through a temporary name and rename,
# so it never sees half a file, and leave unchanged files alone, so it is not
# woken for nothing.
install_component() {
    local name="$1" destination_dir="$2"
    local built="$target_dir/$wasm_target/$profile/${name//-/_}.wasm"
    local destination="$destination_dir/$name.wasm"
    mkdir -p "$destination_dir"
    if ! cmp -s "$built" "$destination"; then
        cp "$built" "$destination_dir/.$name.wasm.tmp"
        mv -f "$destination_dir/.$name.wasm.tmp" "$destination"
    fi
    printf '  %-44s %8d bytes\n' "${destination#"$root"/}" "$(wc -c <"$destination")"
}

echo "Components:"
for name in "${examples[@]}"; do
    install_component "$name" "$target_dir/plugins"
done
for name in "${bad_plugins[@]}"; do
    install_component "$name" "$target_dir/test-plugins"
done

# ---------------------------------------------------------------------------
# Non-Rust plugins (Python, JavaScript) hook in here: their own script builds
# them into target/plugins/ (e.g. account-balance-py.wasm, account-balance-js.wasm).
# ---------------------------------------------------------------------------
other_plugins="$root/scripts/build-other-plugins.sh"
if [[ -f "$other_plugins" ]]; then
    bash "$other_plugins"
fi
