"""`badges replay (--from-beginning | --since ISO-TIME) [--topic T]`."""

from __future__ import annotations

from datetime import datetime, timezone

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn

from badges.cli.common import console, fail, settings_or_exit
from badges.tools.config_topic import BrokerUnavailable


def _parse_since(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--since {value!r} is not an ISO 8601 time (e.g. 2026-01-31T12:00:00Z)", code=2)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def replay(
    from_beginning: bool = typer.Option(False, "--from-beginning", help="replay every retained event"),
    since: str = typer.Option(None, "--since", metavar="ISO-TIME", help="replay events at or after this time"),
    topic: list[str] = typer.Option(None, "--topic", help="event-bus topic without prefix (repeatable); default: BADGES_INPUT_TOPICS"),
    wait: float = typer.Option(300.0, help="seconds to wait for the workers to report the run"),
) -> None:
    """Re-read event-bus topics to backfill progress; never issues a badge twice."""
    if from_beginning == (since is not None):
        fail("give exactly one of --from-beginning or --since ISO-TIME", code=2)
    settings = settings_or_exit()
    since_dt = _parse_since(since) if since else None
    topics = [settings.bus_topic(t) for t in topic] if topic else settings.input_topic_names

    from badges.tools.replay import Replayer, prepare_topics

    try:
        prepare_topics(settings)
        replayer = Replayer(settings, topics, since_dt)
        plan = replayer.plan()
    except BrokerUnavailable as exc:
        fail(str(exc))
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:>8.0f} ev/s"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"replaying {', '.join(topics)}", total=plan.total, rate=0.0)
        started = progress.get_time()

        def advance(n: int) -> None:
            done = progress.tasks[0].completed + n
            elapsed = max(progress.get_time() - started, 1e-6)
            total = plan.total if plan.total and done <= plan.total else None
            progress.update(task, completed=done, total=total, rate=done / elapsed)

        try:
            summary = replayer.run(plan, advance)
        except BrokerUnavailable as exc:
            fail(str(exc))
        wait_task = progress.add_task("waiting for the workers", total=settings.partitions, rate=0.0)
        summary = replayer.wait_for_reports(wait, lambda n: progress.update(wait_task, completed=n))
    bad = sum(summary.bad_input.values())
    console.print(
        f"replay {summary.replay_id}: read {summary.read} events, handed over {summary.handed_over} "
        f"({summary.skipped_no_rule} of a type no active template uses, "
        f"{summary.skipped_before_since} before --since, {bad} undecodable, {summary.own_output} badge lifecycle events)"
    )
    if summary.complete:
        console.print(
            f"workers applied {summary.applied} events: {summary.fulfillments_added} fulfillments added, "
            f"{summary.awards} badges awarded, {summary.revocations} revoked"
        )
    else:
        console.print(
            f"[yellow]only {summary.partitions_reported} of {settings.partitions} partitions reported within "
            f"{wait:.0f}s[/yellow]: the events are on the learner-events topic and will be applied when the workers get to them"
        )
        raise typer.Exit(3)
