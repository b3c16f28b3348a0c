#!/usr/bin/env bash
# Check formatting (clang-format) and run clang-tidy over agent/ sources.
#
# Usage: scripts/lint.sh [--format-only | --tidy-only]
#   CLANG_FORMAT, CLANG_TIDY  override the tool binaries (default clang-format, clang-tidy)
# Tools come from `scripts/install-deps.sh --with-tools`; a missing tool is skipped with a note.
# clang-tidy reads build/debug/compile_commands.json, configuring the debug preset if needed.
# Exits non-zero on any formatting difference or clang-tidy error (warnings are not errors).
set -euo pipefail

repo_root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd -- "${repo_root}"

run_format=1
run_tidy=1
case "${1:-}" in
  "") ;;
  --format-only) run_tidy=0 ;;
  --tidy-only) run_format=0 ;;
  -h | --help)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "lint.sh: unknown argument: $1" >&2
    exit 2
    ;;
esac

clang_format="${CLANG_FORMAT:-clang-format}"
clang_tidy="${CLANG_TIDY:-clang-tidy}"
status=0

mapfile -t sources < <(find agent -type f -name '*.cpp' | sort)
mapfile -t headers < <(find agent -type f -name '*.hpp' | sort)
if [[ "${#sources[@]}" -eq 0 ]]; then
  echo "lint.sh: no sources under agent/"
  exit 0
fi

if [[ "${run_format}" -eq 1 ]]; then
  if command -v "${clang_format}" >/dev/null 2>&1; then
    echo "lint.sh: ${clang_format} --dry-run -Werror on ${#sources[@]} .cpp + ${#headers[@]} .hpp"
    "${clang_format}" --dry-run -Werror "${sources[@]}" "${headers[@]}" || status=1
  else
    echo "lint.sh: ${clang_format} not found, skipping format check" \
      "(scripts/install-deps.sh --with-tools)"
  fi
fi

if [[ "${run_tidy}" -eq 1 ]]; then
  if command -v "${clang_tidy}" >/dev/null 2>&1; then
    if [[ ! -f build/debug/compile_commands.json ]]; then
      cmake --preset debug >/dev/null
    fi
    echo "lint.sh: ${clang_tidy} -p build/debug on ${#sources[@]} files"
    printf '%s\0' "${sources[@]}" |
      xargs -0 -n 4 -P 2 "${clang_tidy}" -p build/debug --quiet || status=1
  else
    echo "lint.sh: ${clang_tidy} not found, skipping clang-tidy" \
      "(scripts/install-deps.sh --with-tools)"
  fi
fi

if [[ "${status}" -eq 0 ]]; then
  echo "lint.sh: OK"
else
  echo "lint.sh: FAILED" >&2
fi
exit "${status}"
