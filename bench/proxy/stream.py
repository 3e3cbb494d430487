#!/usr/bin/env python3
"""Streaming check of bench/proxy/run.sh: one large download, hashed as it arrives, while the
memory of a process is watched.

Usage: stream.py URL HOST_HEADER PID EXPECTED_BYTES EXPECTED_SHA256
Prints one JSON object: status, bytes, sha256_ok, seconds, mb_per_s, and the VmRSS of PID
(kB) before, at its peak during and after the download. The peak is VmHWM when the script could
reset it (`echo 5 > /proc/PID/clear_refs`, Linux, the process's owner or root), else the highest
of VmRSS samples taken every 20 ms ("peak_source" says which).
"""
import hashlib
import http.client
import json
import sys
import threading
import time
import urllib.parse


def status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main():
    url, host, pid, want_bytes, want_sha = sys.argv[1:6]
    want_bytes = int(want_bytes)
    u = urllib.parse.urlsplit(url)
    out = {"url": url, "host_header": host}
    out["rss_before_kb"] = status_kb(pid, "VmRSS")
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        hwm_reset = True
    except OSError:
        hwm_reset = False

    samples = []
    done = threading.Event()

    def sampler():
        while not done.is_set():
            v = status_kb(pid, "VmRSS")
            if v is not None:
                samples.append(v)
            done.wait(0.02)

    watcher = threading.Thread(target=sampler, daemon=True)
    watcher.start()
    digest, total, status = hashlib.sha256(), 0, None
    started = time.monotonic()
    try:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        conn.request("GET", u.path or "/", headers={"Host": host})
        res = conn.getresponse()
        status = res.status
        while True:
            chunk = res.read(1 << 20)
            if not chunk:
                break
            digest.update(chunk)
            total += len(chunk)
        conn.close()
    except (OSError, http.client.HTTPException) as e:
        out["error"] = f"{type(e).__name__}: {e}"
    seconds = time.monotonic() - started
    done.set()
    watcher.join()
    time.sleep(0.2)  # let the proxy drop its buffers of the finished response
    out["status"] = status
    out["bytes"] = total
    out["sha256_ok"] = total == want_bytes and digest.hexdigest() == want_sha
    out["seconds"] = round(seconds, 3)
    out["mb_per_s"] = round(total / 1e6 / seconds, 1) if seconds > 0 else None
    sampled_peak = max(samples) if samples else None
    hwm = status_kb(pid, "VmHWM") if hwm_reset else None
    if hwm is not None:
        out["rss_peak_kb"], out["peak_source"] = max(hwm, sampled_peak or 0), "VmHWM reset before the download"
    else:
        out["rss_peak_kb"], out["peak_source"] = sampled_peak, "VmRSS sampled every 20 ms"
    out["rss_after_kb"] = status_kb(pid, "VmRSS")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
