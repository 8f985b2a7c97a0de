# Five minutes of views on two sites (event time starts at 2023-11-14T22:13:20Z), then one
# view six minutes later that closes them.
set -euo pipefail
awk 'BEGIN { srand(5); t0 = 1700000000000; for (i = 0; i < 3000; i++) {
         site = (i % 3) ? "shop" : "blog"; t = t0 + int(i * 100 + rand() * 50)
         printf "%s|{\"site\":\"%s\",\"user\":\"u%d\",\"ts\":%.0f}\n", site, site, int(rand() * 200), t }
     for (s = 0; s < 2; s++) { site = s ? "blog" : "shop"
         printf "%s|{\"site\":\"%s\",\"user\":\"u0\",\"ts\":%.0f}\n", site, site, t0 + 660000 } }' \
    >"$WORK/pageviews.txt"
kcat -P -b "$BOOTSTRAP" -t pageviews -K '|' -l "$WORK/pageviews.txt"
echo "unique-users: $(wc -l <"$WORK/pageviews.txt") views in topic 'pageviews'"
