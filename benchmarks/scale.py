"""Full-scale N-BaIoT on one box: train + evaluate through `fedcl run` on a UCI-layout set of up to 7.06 M rows.

    .venv/bin/python benchmarks/scale.py [--sizes 1x,10x,full] [--out ~/.cache/fedcl/scale] [--local-steps 32]

REAL VALUES, SYNTHETIC VOLUME. The public N-BaIoT archive (9 devices, 7,062,606 rows, ~5 GB of CSV) is
not on this machine, so this script builds a data set of its size and shape from the real rows we have:
fedmse-iid's benign rows (normal + test_normal) go into the devices' `benign_traffic.csv`, its attack rows
(abnormal) into the attack files, tiled in turn and each cell multiplied by (1 + 0.01·N(0, 1)) so no two
rows repeat exactly. Every value is a real N-BaIoT value up to that 1 % jitter; the volume, the devices and
the files are synthetic. The layout and the per-device, per-file row counts are the UCI archive's
(`ROWS` below, scaled to the size asked for): 555,932 benign rows (7.9 %) and 6,506,674 attack rows, and
Ennio_Doorbell and Samsung_SNH_1011_N_Webcam have no Mirai files, as in the archive.

Each size is written once, with pyarrow's CSV writer, under `--out` (default ~/.cache/fedcl/scale/rows-N)
and reused while its manifest says the same size and recipe. Each size then runs the real CLI,
`fedcl run --data DIR --config CONFIG` (UCI layout auto-detected), in a child process, timed by the wall
clock; its peak RSS is the child's `ru_maxrss` (os.wait4). The config is fedcl's defaults but
`local_steps` (`--local-steps`; 0: no bound): a node trains at most that many batches per round, so a
round costs the same however many rows a device has. Sizes: `1x` and `10x` are 54,687 and 546,870 rows
(fedmse-iid's row count, once and ten times), `full` is 7,062,606; any integer is a row count. The small
form is `--sizes 1x` (~20 s); far fewer rows leave devices a handful of benign rows and are no faster.

The last line is `full scale <rows> rows: <seconds> s, peak RSS <GB> GB` (GB = 10⁹ bytes) for the
largest size run. Goal (issue 14): ≤ 10 min and ≤ 4 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "nbaiot" / "fedmse-iid"
FULL = 7_062_606
FEDMSE_ROWS = 54_687  # 16,676 + 5,520 benign and 32,491 attack rows
JITTER = 0.01  # multiplicative, per cell
RECIPE = 1  # bump when the way rows are made changes: cached sets are then rebuilt
GAFGYT = ("combo", "junk", "scan", "tcp", "udp")
MIRAI = ("ack", "scan", "syn", "udp", "udpplain")

# Rows per device and file of the UCI archive (benign; gafgyt combo, junk, scan, tcp, udp; mirai ack, scan,
# syn, udp, udpplain), from its description: 555,932 benign rows, 7,062,606 in all.
ROWS = {
    "Danmini_Doorbell": (49_548, (59_718, 29_068, 29_849, 92_141, 105_874),
                         (102_195, 107_685, 122_573, 237_665, 81_982)),
    "Ecobee_Thermostat": (13_113, (53_012, 30_312, 27_494, 95_021, 104_791),
                          (113_285, 43_192, 116_807, 151_481, 87_368)),
    "Ennio_Doorbell": (39_100, (53_014, 29_797, 28_120, 101_536, 103_933), ()),
    "Philips_B120N10_Baby_Monitor": (175_240, (58_152, 28_349, 27_859, 92_581, 105_782),
                                     (91_123, 103_621, 118_128, 217_034, 80_808)),
    "Provision_PT_737E_Security_Camera": (62_154, (61_380, 30_898, 29_297, 104_510, 104_011),
                                          (60_554, 96_781, 65_746, 156_248, 56_681)),
    "Provision_PT_838_Security_Camera": (98_514, (57_530, 29_068, 28_397, 89_387, 104_658),
                                         (57_997, 97_096, 61_851, 158_608, 53_785)),
    "Samsung_SNH_1011_N_Webcam": (52_150, (58_669, 28_305, 27_698, 97_783, 110_617), ()),
    "SimpleHome_XCS7_1002_WHT_Security_Camera": (46_585, (54_283, 28_579, 27_825, 88_816, 103_720),
                                                 (111_480, 45_930, 125_715, 151_879, 78_244)),
    "SimpleHome_XCS7_1003_WHT_Security_Camera": (19_528, (59_398, 27_413, 28_572, 98_075, 102_980),
                                                 (107_187, 43_674, 122_479, 157_084, 84_436)),
}


def archive_files() -> dict[str, int]:
    """Relative path -> rows of every file of the UCI archive."""
    files = {}
    for device, (benign, gafgyt, mirai) in ROWS.items():
        files[f"{device}/benign_traffic.csv"] = benign
        files |= {f"{device}/gafgyt_attacks/{name}.csv": n for name, n in zip(GAFGYT, gafgyt)}
        files |= {f"{device}/mirai_attacks/{name}.csv": n for name, n in zip(MIRAI, mirai)}
    assert sum(files.values()) == FULL and sum(b for b, _, _ in ROWS.values()) == 555_932
    return files


def file_rows(total: int) -> dict[str, int]:
    """The archive's files with their rows scaled to ``total`` in all (largest remainders; ≥ 3 rows each)."""
    files = archive_files()
    exact = {path: n * total / FULL for path, n in files.items()}
    rows = {path: int(x) for path, x in exact.items()}
    by_remainder = sorted(exact, key=lambda p: exact[p] - rows[p], reverse=True)
    for path in by_remainder[: total - sum(rows.values())]:
        rows[path] += 1
    return {path: max(n, 3) for path, n in rows.items()}  # a device needs benign rows to train, val, test


def parse_size(text: str) -> int:
    """'1x' / '10x' (times fedmse-iid's rows), 'full', or a row count."""
    if text == "full":
        return FULL
    if text.endswith("x"):
        return round(float(text[:-1]) * FEDMSE_ROWS)
    return int(text)


# ------------------------------------------------------------------- the data set


def source_rows(source: Path) -> tuple[np.ndarray, np.ndarray]:
    """fedmse-iid's real benign and attack rows (float64, all clients), read by fedcl's own reader."""
    sys.path.insert(0, str(ROOT / "src"))
    from fedcl.data import read_dataset

    nodes = read_dataset(source, "clients")
    benign = np.concatenate([part for n in nodes for part in (n.benign, n.benign_test) if part is not None])
    return benign, np.concatenate([n.attack for n in nodes])


def tiled(pool: np.ndarray, n: int, rng: np.random.Generator, start: int) -> np.ndarray:
    """``n`` rows of ``pool`` from row ``start`` on, cycling, each cell times (1 + JITTER·N(0, 1))."""
    rows = pool[(start + np.arange(n)) % len(pool)]
    rows *= 1.0 + JITTER * rng.standard_normal(rows.shape)
    return rows.astype(np.float32)  # the archive's ~10 significant digits; float32 keeps the CSV that size


def write_csv(path: Path, columns: list[str], rows: np.ndarray) -> None:
    """``rows`` under a plain header line, as the UCI archive's files are (pyarrow's writer would quote it)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({str(j): rows[:, j] for j in range(rows.shape[1])})
    with path.open("wb") as out:
        out.write((",".join(columns) + "\n").encode())
        pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="none"))


def build(out: Path, total: int, source: Path = SOURCE, seed: int = 0) -> Path:
    """The UCI-layout set of ``total`` rows under ``out`` (written once: reused when the manifest matches)."""
    manifest = out / "manifest.json"
    want = {"rows": total, "recipe": RECIPE, "jitter": JITTER, "seed": seed, "source": str(source)}
    if manifest.is_file() and json.loads(manifest.read_text()) == want:
        return out
    columns = (ROOT / "src" / "fedcl" / "data" / "columns.txt").read_text().split()
    benign, attack = source_rows(source)
    rng = np.random.default_rng(seed)
    manifest.unlink(missing_ok=True)  # a half-written set is never taken for a whole one
    for path, n in file_rows(total).items():
        pool = benign if path.endswith("benign_traffic.csv") else attack
        # Chunks bound the float64 working copy; each file starts at a random row of its pool.
        start = int(rng.integers(len(pool)))
        parts = [tiled(pool, min(200_000, n - lo), rng, start + lo) for lo in range(0, n, 200_000)]
        write_csv(out / path, columns, np.concatenate(parts))
    manifest.write_text(json.dumps(want))
    return out


# ------------------------------------------------------------------- the run


def run_cli(data: Path, run_dir: Path, local_steps: int) -> tuple[float, float, dict]:
    """`fedcl run` on ``data`` in a child process: wall seconds, peak RSS (bytes) and the pooled metrics."""
    config = run_dir.parent / f"{run_dir.name}.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"local_steps = {local_steps}\n")
    command = [str(ROOT / ".venv" / "bin" / "fedcl"), "run", "--data", str(data), "--config", str(config),
               "--out", str(run_dir)]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS, not the largest child's so far
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        sys.exit(f"fedcl run failed ({child.returncode}):\n{stderr.decode(errors='replace')[-2000:]}")
    pooled = json.loads((run_dir / "metrics.json").read_text())["pooled"]
    return seconds, usage.ru_maxrss * 1024.0, pooled


def load_average() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1x,10x,full", help="Comma-separated: 1x, 10x, full or row counts.")
    parser.add_argument("--out", type=Path, default=Path.home() / ".cache" / "fedcl" / "scale",
                        help="Folder of the generated sets (one rows-N folder per size, kept for next time).")
    parser.add_argument("--runs", type=Path, default=Path("runs/scale"), help="Run directories.")
    parser.add_argument("--local-steps", type=int, default=32, help="Config local_steps (0: no bound).")
    args = parser.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    print("Real N-BaIoT values (fedmse-iid's rows, 1 % jitter), synthetic volume: the UCI archive's layout "
          "and per-file row counts, scaled.", flush=True)
    result = None
    for total in sizes:
        start = time.perf_counter()
        data = build(args.out / f"rows-{total}", total)
        made = time.perf_counter() - start
        size = sum(f.stat().st_size for f in data.rglob("*.csv"))
        seconds, rss, pooled = run_cli(data, args.runs / f"rows-{total}", args.local_steps)
        print(f"{total:>9,d} rows ({size / 1e9:.2f} GB of CSV, ready in {made:.0f} s): fedcl run {seconds:.1f} s, "
              f"peak RSS {rss / 1e9:.2f} GB, AUROC {pooled['auroc']:.4f} "
              f"(local_steps {args.local_steps}; {load_average()})", flush=True)
        result = (total, seconds, rss)
    total, seconds, rss = result
    print(f"full scale {total} rows: {seconds:.0f} s, peak RSS {rss / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
