"""Speed is reported as ratios within one run: each group's "reference" against the rest."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups: dict[str, dict[str, object]] = {}
    for bench in session.benchmarks:
        groups.setdefault(bench.group or "", {})[bench.name] = bench
    lines = []
    for group, benches in sorted(groups.items()):
        refs = [b for name, b in benches.items() if "reference" in name]
        if not refs:
            continue
        ref = refs[0]
        for name, bench in sorted(benches.items()):
            if bench is ref:
                continue
            ratio = ref.stats.median / bench.stats.median
            lines.append(
                f"{group}: {name} median {bench.stats.median * 1e3:.3f} ms, "
                f"{ref.name} median {ref.stats.median * 1e3:.3f} ms -> {ratio:.1f}x faster"
            )
    if lines:
        terminalreporter.write_sep("-", "speed ratios (same run)")
        for line in lines:
            terminalreporter.write_line(line)
