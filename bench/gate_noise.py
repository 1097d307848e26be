"""Benchmark: how often the promotion gate refuses by chance, and catches a worse model.

Chooses ``admin.promotion.NOISE_SE`` on Bitext (mapped onto the departments with the shared
``department_mapping.json``; read in place), never on BANKING77, which ``bench/loop.py`` reports
on. A team's story is replayed with the real learner: the shipped starter data plus the first
N Bitext training tickets, for growing N. Every pair of those models is a candidate and an
active model whose true difference is known from the whole Bitext test split (924 tickets).
The gate (``admin.promotion.decide_promotion`` with the settings' defaults) then sees only a
random sample of the test split as the team's held-out tickets, as the bot does, with and
without the allowance for chance (``PairedNoise``) at several ``k``.

Reported per holdout size: the share of refusals of candidates that are truly not worse (on
the whole test split: macro-F1 not lower; by less than 0.02, as the loop's next model usually
is, or by more), and of candidates that are truly worse by at least 0.03 / 0.05 / 0.10 of
macro-F1. Not a test: it prints a table, then one JSON line.

    python bench/gate_noise.py [--learner tfidf|embedding] [--draws 60] [--sizes 50,100,200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from admin.promotion import decide_promotion, paired_noise  # noqa: E402
from admin.scoring import score_predicted  # noqa: E402
from admin.settings import Settings  # noqa: E402
from admin.training_data import read_starter  # noqa: E402
from bench.banking77 import find_datasets  # noqa: E402
from classifier.examples import Example, Source  # noqa: E402
from classifier.learners import LearnerContext, get_learner  # noqa: E402
from classifier.taxonomy import load_taxonomy  # noqa: E402
from data import DEFAULT_TAXONOMY, STARTER_TRAIN  # noqa: E402

#: Bitext tickets learnt by each model (plus the starter data), as a team's corrections grow.
SIZES = (0, 10, 20, 40, 60, 80, 100, 140, 180, 240, 300, 400)
KS = (1.0, 1.5, 2.0, 2.5, 3.0)
WORSE_BY = (0.03, 0.05, 0.10)
#: Candidates truly better by less than this are the ones chance refuses (the loop's next
#: model, 20 corrections later, is one).
NEAR_BY = 0.02
NEAR = "better by < 0.02"


def read_bitext(folder: Path, split: str) -> list[Example]:
    """One split of Bitext with its intents mapped onto departments."""
    mapping = json.loads((folder / "department_mapping.json").read_text())
    to_department = mapping["label_to_department"]
    key = mapping["key_field"]
    with (folder / f"{split}.jsonl").open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [Example(r["text"], to_department[r[key]], Source.CORRECTION) for r in rows]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", help="the shared datasets folder")
    parser.add_argument("--learner", default="tfidf", choices=("tfidf", "embedding"))
    parser.add_argument("--draws", type=int, default=60, help="holdout samples per pair")
    parser.add_argument("--sizes", default="50,100,200", help="held-out team tickets")
    parser.add_argument("--resamples", type=int, default=400, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    folder = find_datasets(args.datasets) / "bitext_customer_support"
    train, test = read_bitext(folder, "train"), read_bitext(folder, "test")
    random.Random(args.seed).shuffle(train)
    taxonomy = load_taxonomy(DEFAULT_TAXONOMY)
    labels = taxonomy.labels
    starter = read_starter((STARTER_TRAIN,))
    learner = get_learner(args.learner, LearnerContext(taxonomy=taxonomy))
    texts = [e.text for e in test]
    predictions: list[list[str]] = []
    for size in SIZES:
        model = await learner.train([*starter, *train[:size]], labels, seed=args.seed)
        predictions.append([p.label for p in await model.predict(texts)])
        print(f"model on starter + {size} Bitext tickets", file=sys.stderr, flush=True)
    true_f1 = [score_predicted("m", "", test, p, labels).report.macro_f1 for p in predictions]

    settings = Settings()
    rules: dict[str, Any] = {
        "tolerance": settings.promote_tolerance,
        "max_recall_drop": settings.max_recall_drop,
        "min_lost_tickets": settings.recall_drop_min_tickets,
    }
    rng = random.Random(args.seed)
    # (size, truth class, rule) -> [refused, seen]
    tally: dict[tuple[int, str, str], list[int]] = {}
    pairs = [(a, c) for a in range(len(SIZES)) for c in range(len(SIZES)) if a != c]
    for n in (int(s) for s in args.sizes.split(",")):
        for a, c in pairs:
            delta = true_f1[c] - true_f1[a]
            classes = [NEAR if delta < NEAR_BY else "better by 0.02+"] if delta >= 0 else []
            classes += [f"worse by {w:.2f}+" for w in WORSE_BY if delta <= -w]
            if not classes:
                continue
            for _ in range(args.draws):
                rows = rng.sample(range(len(test)), n)
                held = [test[i] for i in rows]
                cand = [predictions[c][i] for i in rows]
                act = [predictions[a][i] for i in rows]
                c_score = score_predicted("c", "", held, cand, labels).held_score()
                a_score = score_predicted("a", "", held, act, labels).held_score()
                noise = paired_noise(
                    [e.label for e in held], cand, act, resamples=args.resamples, seed=args.seed
                )
                verdicts = {"no allowance (before)": decide_promotion(c_score, a_score, **rules)}
                for k in KS:
                    verdicts[f"k={k:g}"] = decide_promotion(
                        c_score,
                        a_score,
                        **rules,
                        noise=type(noise)(noise.macro_f1_se, noise.discordant, k),
                    )
                for rule, decision in verdicts.items():
                    for truth in classes:
                        cell = tally.setdefault((n, truth, rule), [0, 0])
                        cell[0] += not decision.promote
                        cell[1] += 1

    truths = [NEAR, "better by 0.02+", *(f"worse by {w:.2f}+" for w in WORSE_BY)]
    rule_names = ["no allowance (before)", *(f"k={k:g}" for k in KS)]
    print(f"\nRefusal rate on Bitext ({args.learner} learner, models on starter + N tickets)")
    print("| held-out team tickets | candidate truly | " + " | ".join(rule_names) + " |")
    print("|---|---|" + "---|" * len(rule_names))
    out: dict[str, Any] = {}
    for n in (int(s) for s in args.sizes.split(",")):
        for truth in truths:
            cells = []
            for rule in rule_names:
                refused, seen = tally.get((n, truth, rule), [0, 0])
                cells.append(f"{refused / seen:.1%} ({seen})" if seen else "-")
                out[f"{n}|{truth}|{rule}"] = refused / seen if seen else None
            print(f"| {n} | {truth} | " + " | ".join(cells) + " |")
    print(json.dumps({"learner": args.learner, "true_macro_f1": true_f1, "refusal": out}))


if __name__ == "__main__":
    asyncio.run(main())
