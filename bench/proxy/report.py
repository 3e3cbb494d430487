#!/usr/bin/env python3
"""Figures of bench/proxy/run.sh: reads the wrk reports and the other measurements in WORK,
prints the comparison, and writes it to RESULT.json and RESULT.txt (the printed text).

Usage: report.py WORK RESULT_BASE META_JSON
  WORK          the run's temp dir: wrk-<target>-<round>.txt, cpu-<target>-<round>.json,
                rss-load.json, stream-*.json
  RESULT_BASE   bench/results/proxy-<stamp> (".json" and ".txt" are added)
  META_JSON     a JSON object from the script: targets, rounds, load, versions, machine, …

Also: report.py --parse-wrk FILE prints the parsed figures of one wrk report as JSON (used to
check the parser on its own).

Exit status: 0, 2 when the run is not valid (non-2xx answers, socket errors, a failed streaming
check), 1 when a wrk report cannot be read.
"""
import json
import os
import re
import statistics
import sys

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def parse_wrk(path):
    """requests/s, latency percentiles (ms), counts and errors of one `wrk --latency` report."""
    text = open(path, encoding="utf-8", errors="replace").read()
    out = {"percentiles_ms": {}}
    m = re.search(r"^Requests/sec:\s+([0-9.]+)\s*$", text, re.M)
    if not m:
        raise ValueError(f"no Requests/sec line in {path}")
    out["requests_per_sec"] = float(m.group(1))
    for pct, value, unit in re.findall(
        r"^\s*(50|75|90|99)(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m|h)\s*$", text, re.M
    ):
        out["percentiles_ms"][pct] = round(float(value) * UNIT_MS[unit], 4)
    for pct in ("50", "99"):
        if pct not in out["percentiles_ms"]:
            raise ValueError(f"no {pct}% latency line in {path} (was --latency given?)")
    out["p50_ms"] = out["percentiles_ms"]["50"]
    out["p99_ms"] = out["percentiles_ms"]["99"]
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h)", text, re.M)
    if m:
        out["requests"] = int(m.group(1))
        out["elapsed_s"] = round(float(m.group(2)) * UNIT_MS[m.group(3)] / 1000.0, 3)
    m = re.search(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", text, re.M)
    out["non_2xx_3xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = dict(
        zip(("connect", "read", "write", "timeout"), map(int, m.groups()) if m else (0, 0, 0, 0))
    )
    return out


def load_json(path, default=None):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def ratio(a, b):
    return round(a / b, 4) if a is not None and b else None


def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.3f}"


def mb(kb):
    return "n/a" if kb is None else f"{kb / 1024:.1f}"


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--parse-wrk":
        print(json.dumps(parse_wrk(sys.argv[2]), indent=2))
        return 0
    work, result_base, meta_file = sys.argv[1:4]
    meta = load_json(meta_file)
    targets, rounds = meta["targets"], meta["rounds"]
    problems, noisy, lines = list(meta.get("problems", [])), [], []

    per_target = {}
    for t in targets:
        runs = []
        for r in range(1, rounds + 1):
            fig = parse_wrk(os.path.join(work, f"wrk-{t}-{r}.txt"))
            fig["round"] = r
            fig["cpu_cores"] = load_json(os.path.join(work, f"cpu-{t}-{r}.json"), {})
            runs.append(fig)
            if fig["non_2xx_3xx"]:
                problems.append(f"{t} round {r}: {fig['non_2xx_3xx']} non-2xx/3xx responses")
            if any(fig["socket_errors"].values()):
                problems.append(f"{t} round {r}: socket errors {fig['socket_errors']}")
            if fig["cpu_cores"].get("other", 0) > 0.1:
                noisy.append(f"{t} round {r}: other processes used {fig['cpu_cores']['other']} cores")
        per_target[t] = {
            "label": meta["labels"][t],
            "url": meta["urls"][t],
            "median": {
                "requests_per_sec": round(statistics.median(x["requests_per_sec"] for x in runs), 1),
                "p50_ms": round(statistics.median(x["p50_ms"] for x in runs), 4),
                "p99_ms": round(statistics.median(x["p99_ms"] for x in runs), 4),
            },
            "runs": runs,
        }

    med = {t: per_target[t]["median"] for t in targets}
    ratios = {}
    if "signpost-proxy" in med:
        for ref in ("nginx-proxy", "nginx"):
            if ref in med:
                ratios[f"rate_signpost_proxy_over_{ref.replace('-', '_')}"] = ratio(
                    med["signpost-proxy"]["requests_per_sec"], med[ref]["requests_per_sec"])
                ratios[f"p99_signpost_proxy_over_{ref.replace('-', '_')}"] = ratio(
                    med["signpost-proxy"]["p99_ms"], med[ref]["p99_ms"])
    if "nginx-proxy" in med and "nginx" in med:
        ratios["rate_nginx_proxy_over_nginx"] = ratio(
            med["nginx-proxy"]["requests_per_sec"], med["nginx"]["requests_per_sec"])
        ratios["p99_nginx_proxy_over_nginx"] = ratio(med["nginx-proxy"]["p99_ms"], med["nginx"]["p99_ms"])

    if "signpost-proxy" in med and "signpost-proxy-ref" in med:
        ratios["rate_signpost_proxy_over_ref"] = ratio(
            med["signpost-proxy"]["requests_per_sec"], med["signpost-proxy-ref"]["requests_per_sec"])
        ratios["p99_signpost_proxy_over_ref"] = ratio(
            med["signpost-proxy"]["p99_ms"], med["signpost-proxy-ref"]["p99_ms"])

    rss_load = load_json(os.path.join(work, "rss-load.json"))
    streams = {}
    for name in ("signpost-proxy", "nginx"):
        s = load_json(os.path.join(work, f"stream-{name}.json"))
        if s is None:
            continue
        streams[name] = s
        if s.get("error") or s.get("status") != 200 or s.get("bytes") != meta["stream_bytes"] or not s.get("sha256_ok"):
            problems.append(f"streaming check through {name} failed: {s}")
    proxy_stream = streams.get("signpost-proxy")
    stream_target = None
    if proxy_stream and proxy_stream.get("rss_before_kb") is not None:
        peak = proxy_stream.get("rss_peak_kb")
        growth_kb = (peak - proxy_stream["rss_before_kb"]) if peak is not None else None
        limit_kb = meta["stream_bytes"] / 1024 * 0.1
        stream_target = {
            "rss_growth_kb": growth_kb,
            "limit_kb": round(limit_kb),
            "met": growth_kb is not None and growth_kb < limit_kb,
        }

    load = meta["load"]
    if meta.get("setup_check_without_proxy"):
        lines.append("SETUP CHECK without signpost-proxy (BENCH_WITHOUT_PROXY=1): not a result to quote")
    lines.append(
        f"proxy benchmark: GET of a {meta['body_bytes']} byte static file, wrk -t{load['threads']} "
        f"-c{load['connections']} -d{load['duration']} --latency -H 'Host: {meta['host_header']}', "
        f"{rounds} interleaved rounds, "
        + (f"{meta['machine']['cores']} cores shared by wrk and the servers" if not meta["machine"].get("pinned")
           else meta["machine"]["shared"]))
    lines.append(f"{'':18} {'requests/s':>12} {'p50 ms':>9} {'p99 ms':>9}   (medians of {rounds} rounds; per round: requests/s)")
    for t in targets:
        m = med[t]
        per_round = ", ".join(f"{x['requests_per_sec']:.0f}" for x in per_target[t]["runs"])
        lines.append(f"{t:18} {m['requests_per_sec']:12.1f} {m['p50_ms']:9.3f} {m['p99_ms']:9.3f}   [{per_round}]")
    for t in targets:
        lines.append(f"  {t}: {per_target[t]['label']}")
    if "signpost-proxy" in med:
        lines.append(
            "ratio signpost-proxy/nginx-proxy (same job): rate "
            f"{fmt_ratio(ratios.get('rate_signpost_proxy_over_nginx_proxy'))}, p99 "
            f"{fmt_ratio(ratios.get('p99_signpost_proxy_over_nginx_proxy'))}")
        lines.append(
            "ratio signpost-proxy/nginx (static file, the ceiling): rate "
            f"{fmt_ratio(ratios.get('rate_signpost_proxy_over_nginx'))}, p99 "
            f"{fmt_ratio(ratios.get('p99_signpost_proxy_over_nginx'))}")
    if "rate_signpost_proxy_over_ref" in ratios:
        lines.append(
            "ratio signpost-proxy/signpost-proxy-ref (this build over the reference build): rate "
            f"{fmt_ratio(ratios['rate_signpost_proxy_over_ref'])}, p99 "
            f"{fmt_ratio(ratios['p99_signpost_proxy_over_ref'])}")
    if "nginx-proxy" in med:
        lines.append(
            f"ratio nginx-proxy/nginx: rate {fmt_ratio(ratios.get('rate_nginx_proxy_over_nginx'))}, "
            f"p99 {fmt_ratio(ratios.get('p99_nginx_proxy_over_nginx'))}")
    for t in targets:
        cpus = [x["cpu_cores"] for x in per_target[t]["runs"] if x["cpu_cores"]]
        if cpus:
            keys = [k for k in ("server", "upstream", "signpost", "wrk", "other") if k in cpus[0]]
            avg = {k: sum(c.get(k, 0) for c in cpus) / len(cpus) for k in keys}
            names = {"server": t, "upstream": "upstream nginx", "signpost": "signpost",
                     "wrk": "wrk", "other": "other processes"}
            # CPU time of the serving process per request: less disturbed by a busy machine
            # than the rates.
            served = [x for x in per_target[t]["runs"] if x["cpu_cores"] and x["requests_per_sec"]]
            per_req = statistics.median(
                x["cpu_cores"]["server"] / x["requests_per_sec"] * 1e6 for x in served) if served else None
            per_target[t]["median"]["server_cpu_us_per_request"] = (
                round(per_req, 1) if per_req is not None else None)
            lines.append(
                f"CPU during the {t} runs (mean), in cores of {meta['machine']['cores']}: "
                + ", ".join(f"{names[k]} {avg[k]:.2f}" for k in keys)
                + (f"; {t} CPU per request {per_req:.1f} µs" if per_req is not None else ""))
    if rss_load:
        lines.append(
            f"signpost-proxy memory after the load: VmRSS {mb(rss_load.get('VmRSS'))} MB, "
            f"peak VmHWM {mb(rss_load.get('VmHWM'))} MB")
    if proxy_stream:
        s = proxy_stream
        lines.append(
            f"streaming: {s.get('bytes')} bytes through signpost-proxy in {s.get('seconds')} s "
            f"({s.get('mb_per_s')} MB/s), HTTP {s.get('status')}, sha256 "
            f"{'ok' if s.get('sha256_ok') else 'WRONG'}; proxy VmRSS before {mb(s.get('rss_before_kb'))} MB, "
            f"peak during {mb(s.get('rss_peak_kb'))} MB ({s.get('peak_source')}), after {mb(s.get('rss_after_kb'))} MB")
        if stream_target:
            lines.append(
                f"  RSS growth during the download: {mb(stream_target['rss_growth_kb'])} MB, target < "
                f"{mb(stream_target['limit_kb'])} MB (10 % of the download) "
                f"[{'ok' if stream_target['met'] else 'MISSED'}]")
    if "nginx" in streams:
        s = streams["nginx"]
        lines.append(
            f"  the same download from nginx directly: {s.get('seconds')} s ({s.get('mb_per_s')} MB/s)")
    for x in noisy:
        lines.append(f"warning: {x}; figures are noisy, rerun on an idle machine")
    for p in problems:
        lines.append(f"INVALID RUN: {p}")

    result = {
        "benchmark": "proxy",
        "setup_check_without_proxy": meta.get("setup_check_without_proxy", False),
        "date": meta["date"],
        "valid": not problems,
        "problems": problems,
        "noisy": noisy,
        "machine": meta["machine"],
        "load": load,
        "request": {"method": "GET", "path": meta["path"], "host_header": meta["host_header"],
                    "body_bytes": meta["body_bytes"]},
        "versions": meta["versions"],
        "targets": per_target,
        "ratio": ratios,
        "signpost_proxy_memory_after_load_kb": rss_load,
        "streaming": {"bytes": meta["stream_bytes"], "runs": streams, "target": stream_target},
    }
    with open(result_base + ".json", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    lines.append(f"written to {result_base}.txt and {result_base}.json")
    text = "\n".join(lines) + "\n"
    with open(result_base + ".txt", "w", encoding="utf-8") as f:
        f.write(text)
    print()
    print(text, end="")
    return 2 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, KeyError) as e:
        print(f"report.py: {e}", file=sys.stderr)
        sys.exit(1)
