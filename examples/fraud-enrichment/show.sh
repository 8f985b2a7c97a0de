set -eu
echo "fraud-enrichment: kcat -C -t transactions-enriched (first 3 of each kind)"
kcat -C -b "$BOOTSTRAP" -t transactions-enriched -o beginning -e -q -f '%s\n' >"$WORK/out.txt"
grep -v '"unknown"' "$WORK/out.txt" | head -3
grep '"unknown"' "$WORK/out.txt" | head -3
echo "fraud-enrichment: $(wc -l <"$WORK/out.txt") enriched, $(grep -c '"unknown"' "$WORK/out.txt") with the default profile"
