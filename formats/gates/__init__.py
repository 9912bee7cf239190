"""Gates: the language (`spec`), the evaluator over a run record (`evaluate`), verdicts and reports.

`harness.prom` evaluates the same `Gate` objects against a live Prometheus and returns
the same `Verdict`s, so `report.write_verdicts` and `verdict.exit_code` serve both.
"""
from formats.gates.evaluate import evaluate, evaluate_gate, histogram_quantile, phase_intervals
from formats.gates.report import junit_xml, print_verdicts, verdict_table, write_verdicts
from formats.gates.spec import Gate, Phase, load_gates, parse_gate, parse_gates, read_gate_file
from formats.gates.verdict import FAIL, PASS, UNKNOWN, Verdict, exit_code, read_gates_json, write_gates_json

__all__ = [
    "FAIL", "PASS", "UNKNOWN", "Gate", "Phase", "Verdict", "evaluate", "evaluate_gate", "exit_code",
    "histogram_quantile", "junit_xml", "load_gates", "parse_gate", "parse_gates", "phase_intervals",
    "print_verdicts", "read_gate_file", "read_gates_json", "verdict_table", "write_gates_json", "write_verdicts",
]
