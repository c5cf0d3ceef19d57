# bench/sites/count_requests.awk — count one bucket's requests in a slice of moto's log.
#
#   tail -c +$((OFFSET + 1)) .stack/moto.log | awk -v bucket=NAME -f bench/sites/count_requests.awk
#
# moto (werkzeug) logs one line per request:
#   127.0.0.1 - - [25/Nov/2026 19:06:30] "PUT /bucket/key HTTP/1.1" 200 -
# Only path-style requests to `bucket` count (`/bucket`, `/bucket?...`, `/bucket/...`).
# A server-side copy is a PUT with x-amz-copy-source, which the log cannot tell apart from an
# upload: it counts as a PUT. PUTs of keys under `.gantry/` (Gantry's manifest and release
# records) are also counted apart, in `meta_puts`. `status_ge_400` counts answers >= 400 (a
# first sync's GET of the missing manifest is one).
# Prints one line: puts= posts= deletes= gets= heads= other= total= meta_puts= status_ge_400=
BEGIN { puts = posts = deletes = gets = heads = other = total = meta = errors = 0 }
{
  if (!match($0, /"[A-Z]+ \/[^ "]* HTTP\/[0-9.]+" [0-9]+/)) next
  req = substr($0, RSTART + 1, RLENGTH - 1)
  n = split(req, f, " ")
  method = f[1]; path = f[2]; status = f[n]
  p = path; sub(/\?.*/, "", p)
  if (p != "/" bucket && index(p, "/" bucket "/") != 1) next
  total++
  if (status + 0 >= 400) errors++
  if (method == "PUT") {
    puts++
    if (p ~ /\/\.gantry(\/|%2[Ff])/) meta++
  } else if (method == "POST") posts++
  else if (method == "DELETE") deletes++
  else if (method == "GET") gets++
  else if (method == "HEAD") heads++
  else other++
}
END {
  printf "puts=%d posts=%d deletes=%d gets=%d heads=%d other=%d total=%d meta_puts=%d status_ge_400=%d\n",
    puts, posts, deletes, gets, heads, other, total, meta, errors
}
