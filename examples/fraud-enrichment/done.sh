set -eu
n=$(kcat -C -b "$BOOTSTRAP" -t transactions-enriched -o beginning -e -q -f '%o\n' 2>/dev/null | wc -l)
[ "$n" -ge 1000 ]
