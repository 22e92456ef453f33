#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/fuzz_targets/) for SECONDS (default 60), one after
# the other, and fails when any of them finds a crash. Installs cargo-fuzz when missing.
#
#   scripts/cargo-fuzz.sh [SECONDS]
#
# Needs the nightly toolchain (cargo +nightly). FUZZ_SANITIZER=none skips AddressSanitizer
# where nightly cannot build it; the default is cargo-fuzz's own (address).
# New corpus entries go to fuzz/corpus/<target> (ignored by git); the committed seeds in
# fuzz/seeds/<target> are read too. A crash leaves its input in fuzz/artifacts/<target>/:
# fix it, add a #[test], and copy the input into fuzz/seeds/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"
targets=(lease_id request_body)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing; installing it" >&2
  cargo install cargo-fuzz --locked
fi

failed=()
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  echo "== $target: ${seconds}s, sanitizer $sanitizer" >&2
  if ! cargo +nightly fuzz run --sanitizer "$sanitizer" "$target" \
    "fuzz/corpus/$target" "fuzz/seeds/$target" \
    -- -max_total_time="$seconds" -print_final_stats=1; then
    failed+=("$target")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
  exit 1
fi
echo "no crashes in ${targets[*]} (${seconds}s each)" >&2
