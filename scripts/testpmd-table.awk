# Prints dpdk-testpmd's figures of the drop-in stage side by side, one column per driver, from
# the guest's `dropin: result LABEL port=N rx=.. tx=.. rx_dropped=.. tx_dropped=.. rx_errors=..
# seconds=.. lsc_irqs=..` lines (tests/guest/dpdk.sh). The hub joins the two ports, so what
# port 0 sends port 1 receives: each direction is shown as sent / received.
#   awk -f scripts/testpmd-table.awk out/console-dropin.log
function num(n) { # 13300000 -> 13,300,000
	s = sprintf("%d", n); r = ""
	while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
	return s r
}
/^dropin: result / {
	label = $3
	if (!(label in seen)) { seen[label] = 1; order[n++] = label }
	split($4, kv, "="); port = kv[2]
	for (i = 5; i <= NF; i++) { split($i, kv, "="); v[label, kv[1], port] = kv[2] }
}
END {
	if (n == 0) { print "  (no testpmd figures in the log)"; exit }
	name["upstream"] = "upstream vfio-pci"; name["dropin"] = "drop-in (vfio_pci_rs)"
	printf "  %-34s", ""
	for (i = 0; i < n; i++) printf "%26s", (order[i] in name ? name[order[i]] : order[i])
	printf "\n"
	row("packets 0->1 (sent / received)", "tx", 0, "rx", 1)
	row("packets 1->0 (sent / received)", "tx", 1, "rx", 0)
	rate("packets/s 0->1, 1->0")
	row("RX dropped (port 0 / port 1)", "rx_dropped", 0, "rx_dropped", 1)
	row("TX dropped (port 0 / port 1)", "tx_dropped", 0, "tx_dropped", 1)
	row("RX errors (port 0 / port 1)", "rx_errors", 0, "rx_errors", 1)
	printf "  %-34s", "MSI-X interrupts (link state)"
	for (i = 0; i < n; i++) printf "%26s", v[order[i], "lsc_irqs", 0]
	printf "\n  %-34s", "seconds forwarding"
	for (i = 0; i < n; i++) printf "%26s", v[order[i], "seconds", 0]
	printf "\n"
	# Both drivers: the drop-in's packet rate over upstream's, both directions together.
	if (("upstream", "seconds", 0) in v && ("dropin", "seconds", 0) in v) {
		up = (v["upstream", "tx", 0] + v["upstream", "tx", 1]) / v["upstream", "seconds", 0]
		ours = (v["dropin", "tx", 0] + v["dropin", "tx", 1]) / v["dropin", "seconds", 0]
		if (up > 0) printf "  %-34s%26.3f\n", "packets/s drop-in / upstream", ours / up
	}
}
function row(title, a, pa, b, pb,   i, l) {
	printf "  %-34s", title
	for (i = 0; i < n; i++) { l = order[i]; printf "%26s", num(v[l, a, pa]) " / " num(v[l, b, pb]) }
	printf "\n"
}
function rate(title,   i, l, s) {
	printf "  %-34s", title
	for (i = 0; i < n; i++) {
		l = order[i]; s = v[l, "seconds", 0]
		printf "%26s", (s > 0 ? num(v[l, "tx", 0] / s) " / " num(v[l, "tx", 1] / s) : "-")
	}
	printf "\n"
}
