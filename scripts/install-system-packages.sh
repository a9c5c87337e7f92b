#!/usr/bin/env bash
# Install the Debian packages listed in $1 (one per line, '#' comments) that are missing.
# Runs `apt-get update` once before installing, and only when something is missing, so a
# second `make` on a ready machine touches nothing.
set -euo pipefail
list_file="${1:-system-packages.txt}"
missing=()
while read -r pkg _; do
    [[ -z "$pkg" || "$pkg" == \#* ]] && continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < "$list_file"
((${#missing[@]} == 0)) && exit 0

echo "Installing system packages: ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
    sudo=""
elif command -v sudo >/dev/null; then
    sudo="sudo"
else
    echo "error: these system packages are missing and we are not root: ${missing[*]}" >&2
    echo "       install them with: apt-get install ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
