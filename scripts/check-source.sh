#!/usr/bin/env bash
# Source checks run by `make check` (STYLE 2, 40):
#  1. banned functions (unbounded or unchecked C calls, shell calls);
#  2. raw malloc/free outside core/; memcmp in crypto/ and auth/;
#  3. includes that point up a layer or reach another module's _int.h.
set -uo pipefail
cd "$(dirname "$0")/.."
fail=0
say() { echo "check-source: $*" >&2; fail=1; }

# Strip /* */ comments and string literals crudely before grepping code.
code() { perl -0777 -pe 's{/\*.*?\*/}{}gs; s{"(?:\\.|[^"\\\n])*"}{""}g' "$1"; }

for f in $(git ls-files 'src/*.c' 'src/*.h' 2>/dev/null || find src -name '*.[ch]'); do
    body=$(code "$f")
    if grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|strtok|rand|srand|system|popen)\s*\(' <<<"$body" >/dev/null; then
        say "$f: banned function: $(grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|strtok|rand|srand|system|popen)\s*\(' <<<"$body" | head -3)"
    fi
    case "$f" in
    src/core/*) ;;
    *)
        if grep -nE '(^|[^_a-z])(malloc|calloc|realloc|free)\s*\(' <<<"$body" | grep -vE 'json|free\(line\)|free\(s\)' >/dev/null; then
            hits=$(grep -nE '(^|[^_a-z])(malloc|calloc|realloc|free)\s*\(' <<<"$body" | grep -vE 'json|free\(line\)|free\(s\)')
            say "$f: raw allocation outside core (use fv_malloc/fv_free): $(head -3 <<<"$hits")"
        fi
        ;;
    esac
    case "$f" in
    src/crypto/* | src/auth/*)
        if grep -nE '\bmemcmp\s*\(' <<<"$body" >/dev/null; then say "$f: memcmp in crypto/auth (use fv_ct_equal)"; fi
        ;;
    esac
done

rank() {
    case "$1" in
    core) echo 0 ;; crypto) echo 1 ;; model) echo 2 ;; store) echo 3 ;;
    auth | audit | backup | replication | ops | residency | lifecycle) echo 4 ;;
    api) echo 5 ;; http) echo 6 ;; main) echo 7 ;; *) echo 99 ;;
    esac
}
for f in $(find src -name '*.[ch]'); do
    mod=$(cut -d/ -f2 <<<"$f")
    [ "$mod" = "main.c" ] && mod=main
    r=$(rank "$mod")
    while read -r inc; do
        [ -n "$inc" ] || continue
        imod=${inc%%/*}
        [ "$imod" = "$mod" ] && continue
        if [[ "$inc" == *_int.h ]]; then say "$f includes another module's private header $inc"; fi
        ir=$(rank "$imod")
        if [ "$ir" -ge "$r" ]; then say "$f ($mod) includes $inc: layers only point down"; fi
    done < <(grep -oE '^#include "[a-z]+/[a-z_]+\.h"' "$f" | sed -E 's/#include "(.*)"/\1/')
done

# .clang-format is the layout (STYLE 40): any difference fails.
if command -v clang-format >/dev/null 2>&1; then
    files=$(git ls-files 'src/*.c' 'src/*.h' 'tests/unit/*.c' 'tests/fuzz/*.c' 2>/dev/null)
    if [ -n "$files" ] && ! clang-format --dry-run -Werror $files >/dev/null 2>&1; then
        say "clang-format reports differences; run: clang-format -i \$(git ls-files 'src/*.[ch]' 'tests/unit/*.c' 'tests/fuzz/*.c')"
    fi
else
    say "clang-format is missing (scripts/install-deps.sh installs it)"
fi

# docs/configuration.md is generated from the settings table.
if [ -x build/formvault ]; then
    if ! diff -q <(build/formvault config docs) docs/configuration.md >/dev/null; then
        say "docs/configuration.md differs from 'formvault config docs' (regenerate it)"
    fi
fi
exit $fail
