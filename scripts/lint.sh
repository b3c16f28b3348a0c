#!/usr/bin/env bash
# Check formatting (clang-format, agent/, tests/ and bench/) and run clang-tidy over agent/ sources.
#
# Usage: scripts/lint.sh [--format-only | --tidy-only] [--strict]
#   --strict  a missing tool is an error (CI), not skipped with a note
#   CLANG_FORMAT, CLANG_TIDY  override the tool binaries (default clang-format, clang-tidy)
# Tools come from `scripts/install-deps.sh --with-tools`.
# clang-tidy reads build/debug/compile_commands.json, configuring the debug preset if needed.
# Exits non-zero on any formatting difference or clang-tidy error (warnings are not errors).
set -euo pipefail

repo_root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd -- "${repo_root}"

run_format=1
run_tidy=1
strict=0
for arg in "$@"; do
  case "${arg}" in
    --format-only) run_tidy=0 ;;
    --tidy-only) run_format=0 ;;
    --strict) strict=1 ;;
    -h | --help)
      sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "lint.sh: unknown argument: ${arg}" >&2
      exit 2
      ;;
  esac
done
if [[ "${run_format}" -eq 0 && "${run_tidy}" -eq 0 ]]; then
  echo "lint.sh: --format-only and --tidy-only exclude each other" >&2
  exit 2
fi

clang_format="${CLANG_FORMAT:-clang-format}"
clang_tidy="${CLANG_TIDY:-clang-tidy}"
status=0

# A tool that is not installed: an error with --strict, otherwise a note.
missing_tool() {
  if [[ "${strict}" -eq 1 ]]; then
    echo "lint.sh: $1 not found (scripts/install-deps.sh --with-tools)" >&2
    status=1
  else
    echo "lint.sh: $1 not found, skipping $2 (scripts/install-deps.sh --with-tools)"
  fi
}

mapfile -t sources < <(find agent -type f -name '*.cpp' | sort)
mapfile -t headers < <(find agent -type f -name '*.hpp' | sort)
mapfile -t test_files < <(find tests bench -type f \( -name '*.cpp' -o -name '*.hpp' \) \
  -not -path 'tests/fuzz/corpus/*' | sort)
if [[ "${#sources[@]}" -eq 0 ]]; then
  echo "lint.sh: no sources under agent/"
  exit 0
fi

if [[ "${run_format}" -eq 1 ]]; then
  if command -v "${clang_format}" >/dev/null 2>&1; then
    echo "lint.sh: ${clang_format} --dry-run -Werror on ${#sources[@]} .cpp + ${#headers[@]} .hpp" \
      "under agent/, ${#test_files[@]} files under tests/ and bench/"
    "${clang_format}" --dry-run -Werror "${sources[@]}" "${headers[@]}" "${test_files[@]}" ||
      status=1
  else
    missing_tool "${clang_format}" "the format check"
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
    missing_tool "${clang_tidy}" "clang-tidy"
  fi
fi

if [[ "${status}" -eq 0 ]]; then
  echo "lint.sh: OK"
else
  echo "lint.sh: FAILED" >&2
fi
exit "${status}"
