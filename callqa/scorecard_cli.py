"""`callqa scorecard`: check a card (and how its semantic rules' examples sit against each other), and tune a
semantic rule on reviewed calls."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from callqa.console import console, fail

scorecard_app = typer.Typer(help="QA scorecards (质检评分表): check a card, alone or against a model bundle; tune a "
                            "semantic rule on reviewed calls.", no_args_is_help=True)
BUNDLE_HELP = "A bundle (folder or tag): its label schema, and its sentence encoder for the card's semantic rules."


def _load(card: str, bundle: str | None):
    """The card, checked against the bundle's schema and given its sentence encoder, where a bundle is named."""
    from callqa.bundle import read_bundle_info, resolve_bundle
    from callqa.pipeline import ScoringPipeline
    from callqa.scorecard import load_scorecard
    from callqa.session import scorecard_for

    if bundle is None:
        return load_scorecard(card)
    folder = resolve_bundle(bundle)
    loaded = scorecard_for(card, folder)
    ScoringPipeline(read_bundle_info(folder), loaded)
    return loaded


@scorecard_app.command("check")
def scorecard_check(
    card: Annotated[str, typer.Argument(help="A shipped card's name (default) or a YAML path.")] = "default",
    bundle: Annotated[str | None, typer.Option("--bundle", "-b", help=BUNDLE_HELP)] = None,
) -> None:
    """Check a scorecard as `callqa serve` and `callqa score` do before scoring a call: every field, rule and phrase
    list, and with --bundle the schema it is written for. With --bundle, each semantic rule's closest pair of
    examples (near-duplicates teach nothing) and any counter-example its examples would match. Exit 1 on a problem."""
    from callqa.bundle import BundleError
    from callqa.scorecard import ScorecardError

    try:
        loaded = _load(card, bundle)
    except (BundleError, ScorecardError, FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    against = f", and fits bundle {bundle}" if bundle else ""
    console.print(f"{loaded.source}: scorecard {loaded.name!r} is valid{against} (hash {loaded.hash})")
    clashes = 0
    for rule in loaded.semantic if loaded.encoder is not None else ():
        matcher = rule.matcher_of_examples
        pairs = matcher.similarity(matcher.examples)
        for i in range(len(pairs)):
            pairs[i, i] = -1  # an example is not its own pair
        a, b = divmod(int(pairs.argmax()), len(pairs))
        line = f"  {rule.id} ({rule.spec.title}, threshold {rule.spec.threshold:g}): {len(rule.examples)} examples"
        if len(rule.examples) > 1:
            line += f"; closest pair {pairs[a, b]:.3f}: “{rule.examples[a]}” / “{rule.examples[b]}”"
        console.print(line, highlight=False)
        if len(matcher.counter_examples):
            against_examples = matcher.similarity(matcher.counter_examples).max(1)
            for text, score in zip(rule.counter_examples, against_examples, strict=True):
                if score >= rule.spec.threshold:
                    clashes += 1
                    console.print(f"    counter-example “{text}” scores {score:.3f} against the examples: at this "
                                  f"threshold it would match", highlight=False)
    if clashes:
        raise fail(f"{clashes} counter-example(s) would match their rule's examples: reword them or raise the threshold")


@scorecard_app.command("tune")
def scorecard_tune(
    rule: Annotated[str, typer.Option("--rule", "-r", help="The semantic rule to tune (its id in the card).")],
    reviews: Annotated[list[Path], typer.Option("--reviews", help="Reviewed calls (`callqa reviews export`): their "
                                                "误判 and 漏扣 marks.", exists=True, dir_okay=False)],
    bundle: Annotated[str, typer.Option("--bundle", "-b", help=BUNDLE_HELP)],
    card: Annotated[str, typer.Option("--card", help="A shipped card's name or a YAML path.")] = "default",
    write: Annotated[Path | None, typer.Option(help="Write the card with the proposed threshold (and the proposed "
                                              "examples added to the rule) here; the card itself is left as is.")] = None,
) -> None:
    """Calibrate a semantic rule on reviews: its precision and recall on the reviewed calls now, the threshold with
    the best F1 on them, and the 漏扣 turns it still misses as examples to add. Writes nothing unless --write."""
    import yaml

    from callqa.bundle import BundleError
    from callqa.jsonl import CallFileError, load_calls
    from callqa.rule_tuning import tune
    from callqa.scorecard import ScorecardError

    try:
        loaded = _load(card, bundle)
        result = tune(loaded, rule, load_calls(reviews))
    except (BundleError, ScorecardError, CallFileError, FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.1%}"

    console.print(f"{rule}: {result.calls} reviewed calls, {result.turns} turns, {result.positives} where reviewers "
                  f"say the criterion holds", highlight=False)
    for name, q in (("now", result.current), ("proposed", result.proposed)):
        console.print(f"  {name:8s} threshold {q.threshold:.4f}: precision {pct(q.precision)}, recall "
                      f"{pct(q.recall)} ({q.hits} hits)", highlight=False)
    for text in result.add_examples:
        console.print(f"  example to add (a 漏扣 it still misses): “{text}”", highlight=False)
    if write is None:
        return
    data = yaml.safe_load(Path(loaded.source).read_text(encoding="utf-8"))
    spec = data["rules"][rule]
    spec["threshold"] = result.proposed.threshold
    if getattr(loaded.encoder, "layers", None):  # the threshold is tuned in this encoder's space: say which
        data["sentence_layers"] = loaded.encoder.layers
        data["sentence_prefix"] = loaded.encoder.prefix
    if result.add_examples:
        spec["examples"] = [*spec.get("examples", []), *result.add_examples]
    if data.get("phrases"):  # the phrase file stays beside the card it was read with
        data["phrases"] = str((Path(loaded.source).parent / data["phrases"]).resolve())
    write.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    console.print(f"written to {write} (check it with `callqa scorecard check {write} --bundle {bundle}`)")
