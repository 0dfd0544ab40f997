"The GPU suite (`benchmarks/gpu_suite.py`) runs on the CPU with --smoke: every part completes without errors."
import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_suite.py"


def test_gpu_suite_smoke_on_cpu(tmp_path):
    out = tmp_path / "x.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--device", "cpu", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert list(res["parts"]) == ["environment", "correctness", "zoo", "stacked", "encoders"]
    for name, part in res["parts"].items():
        assert part["status"] == "ok", (name, part["status"], part.get("traceback"))
    assert res["status"] == {k: "ok" for k in res["parts"]}
    assert all(row["status"] in ("ok", "PASS") for row in res["rows"]), [r for r in res["rows"] if r["status"] not in ("ok", "PASS")]
    assert not any("skipped" in row["status"] for row in res["rows"])
    corr = res["parts"]["correctness"]["result"]
    assert corr["formal-languages"]["forward"]["forward"] < 1e-4 and corr["trainer_formal-languages"]["init_identical"]
    zoo = res["parts"]["zoo"]["result"]
    assert zoo["formal-languages"]["batched"]["models_per_min"] > 0 and zoo["formal-languages"]["paper_zoo_gpu_hours_loop"] > 0
    assert zoo["sequential-mnist"]["paper_zoo_gpu_hours_batched"] > 0
    rows = res["parts"]["encoders"]["result"]["rows"]
    assert len(rows) == 2 * 11 and all("error" not in r and r["step"] > 0 for r in rows)
    assert "| part | case | result | status |" in proc.stdout
