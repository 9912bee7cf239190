"""Gates: the language (`spec`), the evaluator over a run record (`evaluate`), verdicts and JUnit.

`harness.prom` evaluates the same `Gate` objects against a live Prometheus and returns
the same `Verdict`s.
"""
from harness.gates.spec import Gate, Phase, load_gates, parse_gates, read_gate_file

__all__ = ["Gate", "Phase", "load_gates", "parse_gates", "read_gate_file"]
