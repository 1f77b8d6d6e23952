"""What to say when a kata is finished: how long it took, and where to go next.

The ladder (after `python -m pytest katas/01_tensor`) and the scoreboard (after a run
limited with `--kata`) both end with these lines when everything they ran is green.
"""

from __future__ import annotations

from harness import progress

MILESTONES = "milestones"


def complete_ids(manifest, history: list[dict]) -> set[str]:
    """Katas whose every checkpoint, and milestones that, went green at some point."""
    greens = progress.first_greens(history)
    done = {kata.id for kata in manifest.katas
            if all((kata.id, c.name) in greens for c in kata.checkpoints)}
    done |= {m.id for m in manifest.milestones if (m.id, m.id) in greens}
    return done


def clock_text(kata_id: str, checkpoints: list[str], history: list[dict]) -> str:
    """ "42 min 7 s" from the kata's clock start to its last first green, or "" without a clock."""
    start = progress.starts(history).get(kata_id)
    greens = progress.first_greens(history)
    times = [greens[(kata_id, name)]["time"] for name in checkpoints if (kata_id, name) in greens]
    if start is None or len(times) < len(checkpoints):
        return ""
    seconds = (max(progress.parse_time(t) for t in times) - progress.parse_time(start["time"])).total_seconds()
    if seconds < 0:
        return ""
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {seconds} s"


def _flag(mode: str) -> str:
    return {"scaffold": " --scaffold", "reference": " --impl=reference"}.get(mode, "")


def next_lines(manifest, finished: list[str], mode: str, history: list[dict]) -> list[str]:
    """Where to go once the katas (and milestones) in `finished` are all green."""
    complete = complete_ids(manifest, history) | set(finished)
    last = max((manifest.by_id[k].number for k in finished if k in manifest.by_id), default=0)
    pending = [k for k in manifest.katas if k.id not in complete]
    upcoming = [k for k in pending if k.number > last] or pending
    lines = []
    if upcoming:
        kata = upcoming[0]
        lines.append(f"Next: kata {kata.id} ({kata.title}): python -m pytest katas/{kata.id}{_flag(mode)}")
    reachable = [m for m in manifest.milestones if m.id not in complete and set(m.requires) <= complete]
    for milestone in reachable[:2]:
        lines.append(f"Within reach: milestone {milestone.id} ({milestone.title}): "
                     f"python katas/milestones/{milestone.id}.py")
    if not lines:
        lines.append("Every kata and milestone is green. Well done: you built it.")
    return lines


def finished_lines(manifest, group: str, mode: str) -> list[str]:
    """The lines the ladder prints when kata `group` (or the milestones run) is all green."""
    history = progress.read_history() if mode in progress.RECORDED_MODES else []
    if group == MILESTONES:
        return ["Every milestone run here passed."] + next_lines(manifest, [], mode, history)
    kata = manifest.by_id[group]
    names = [c.name for c in kata.checkpoints]
    clock = clock_text(kata.id, names, history)
    done = f"Kata {kata.id} is done: all {len(names)} checkpoints are green"
    lines = [done + (f", {clock} after its clock started." if clock else ".")]
    return lines + next_lines(manifest, [kata.id], mode, history)
