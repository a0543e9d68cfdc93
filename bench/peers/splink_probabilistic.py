"""The probabilistic peer of bench/feeds.py: Splink (DuckDB backend) links an ID-less feed
to the pensioner roll and is scored against the feed's labels. Prints one JSON line.

The model is the usual Splink recipe for people without an identifier:
- blocking for predictions on the birth date and on the name;
- comparisons: Jaro-Winkler on the name, Levenshtein on the birth date (YYYY-MM-DD),
  exact gender, exact region code;
- the prior (probability that two random records match) from a deterministic rule
  (same name and birth date, recall 0.7), u by random sampling, m by expectation
  maximisation blocked on the birth date and then on the name with the region.

Why the name *with the region* for the second EM session: Splink's guidance is a training
block in which matches are 1-99% of the pairs. Among a million pensioners a name is shared
by hundreds, so pairs with the same name are almost all non-matches, and EM blocked on the
name alone (`--em-name-block name`) settles on m(exact birth date) ≈ 0.01: the birth date
then counts for nothing and no pair reaches 0.99. Same name and same district is a block
EM can separate, and it still trains every birth-date level (a block on name and birth
year would leave the birth date untrained, on Splink's defaults).

Each feed record's best-scoring pensioner is its answer: at a threshold a record is a
predicted match when its best pair's match probability reaches the threshold; a true
positive when that pensioner is the one in the labels. Recall is over the true records.

The roll gives only the ID number, name and region; birth date and gender come from the ID
number, as lifecert derives them.

    python splink_probabilistic.py --pensioners pensioners.csv --feed probabilistic.csv \
        --labels probabilistic_labels.csv
"""

import argparse
import json
import logging
import time

import duckdb
import splink
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

THRESHOLDS = [0.1, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pensioners", required=True)
    ap.add_argument("--feed", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--u-max-pairs", type=float, default=1e7)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--em-name-block",
        choices=["name_region", "name"],
        default="name_region",
        help="the second EM session's block: name and region (default), or name alone",
    )
    args = ap.parse_args()

    timings = {}
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute(
        """
        CREATE TABLE pensioners AS
        SELECT id_number AS unique_id,
               name,
               substr(id_number, 7, 4) || '-' || substr(id_number, 11, 2) || '-'
                   || substr(id_number, 13, 2) AS birth_date,
               CASE WHEN CAST(substr(id_number, 17, 1) AS INTEGER) % 2 = 1 THEN 'M' ELSE 'F' END
                   AS gender,
               region_code AS region
        FROM read_csv(?, header = true, all_varchar = true)
        """,
        [args.pensioners],
    )
    con.execute(
        """
        CREATE TABLE records AS
        SELECT record_id AS unique_id,
               nullif(trim(name), '') AS name,
               nullif(trim(birth_date), '') AS birth_date,
               nullif(trim(gender), '') AS gender,
               nullif(trim(region_code), '') AS region
        FROM read_csv(?, header = true, all_varchar = true)
        """,
        [args.feed],
    )
    timings["load"] = time.perf_counter() - started

    db_api = DuckDBAPI(connection=con)
    pensioners = db_api.register("pensioners", dataset_display_name="pensioners")
    records = db_api.register("records", dataset_display_name="records")
    settings = SettingsCreator(
        link_type="link_only",
        unique_id_column_name="unique_id",
        comparisons=[
            cl.JaroWinklerAtThresholds("name", [0.9, 0.7]),
            cl.LevenshteinAtThresholds("birth_date", [1, 2]),
            cl.ExactMatch("gender"),
            cl.ExactMatch("region"),
        ],
        blocking_rules_to_generate_predictions=[block_on("birth_date"), block_on("name")],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )
    linker = Linker([pensioners, records], settings, log_level=logging.WARNING)

    t = time.perf_counter()
    linker.training.estimate_probability_two_random_records_match(
        [block_on("name", "birth_date")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=args.u_max_pairs, seed=args.seed)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth_date"))
    if args.em_name_block == "name":
        linker.training.estimate_parameters_using_expectation_maximisation(block_on("name"))
    else:
        linker.training.estimate_parameters_using_expectation_maximisation(
            block_on("name", "region")
        )
    timings["train"] = time.perf_counter() - t
    model = linker.misc.save_model_to_json()
    trained = {
        "probability_two_random_records_match": model["probability_two_random_records_match"],
        "levels": {
            c["output_column_name"]: [
                {
                    "level": level["label_for_charts"],
                    "m": level.get("m_probability"),
                    "u": level.get("u_probability"),
                }
                for level in c["comparison_levels"]
                if not level.get("is_null_level")
            ]
            for c in model["comparisons"]
        },
    }

    t = time.perf_counter()
    predictions = linker.inference.predict(threshold_match_probability=min(THRESHOLDS))
    pairs = predictions.physical_name
    timings["predict"] = time.perf_counter() - t

    t = time.perf_counter()
    # Each record's best pensioner (ties broken by the pensioner id, for determinism).
    con.execute(
        f"""
        CREATE TABLE best AS
        WITH p AS (
            SELECT CASE WHEN source_dataset_l = 'records' THEN unique_id_l ELSE unique_id_r END
                       AS record_id,
                   CASE WHEN source_dataset_l = 'records' THEN unique_id_r ELSE unique_id_l END
                       AS pensioner,
                   match_probability
            FROM {pairs}
        )
        SELECT record_id,
               arg_max(pensioner, (match_probability, pensioner)) AS pensioner,
               max(match_probability) AS p
        FROM p GROUP BY record_id
        """
    )
    con.execute(
        """
        CREATE TABLE labels AS
        SELECT record_id, nullif(true_id_number, '') AS truth
        FROM read_csv(?, header = true, all_varchar = true)
        """,
        [args.labels],
    )
    n_true = con.execute("SELECT count(truth) FROM labels").fetchone()[0]
    n_pairs = con.execute(f"SELECT count(*) FROM {pairs}").fetchone()[0]
    quality = []
    for th in THRESHOLDS:
        predicted, tp = con.execute(
            """
            SELECT count(*), count(*) FILTER (WHERE b.pensioner = l.truth)
            FROM best b JOIN labels l USING (record_id)
            WHERE b.p >= ?
            """,
            [th],
        ).fetchone()
        pairs_at = con.execute(
            f"SELECT count(*) FROM {pairs} WHERE match_probability >= ?", [th]
        ).fetchone()[0]
        precision = tp / predicted if predicted else 1.0
        recall = tp / n_true if n_true else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        quality.append(
            {
                "threshold": th,
                "predicted": predicted,
                "true_positives": tp,
                "false_positives": predicted - tp,
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "pairs": pairs_at,
            }
        )
    timings["evaluate"] = time.perf_counter() - t
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "tool": "splink",
                "version": splink.__version__,
                "duckdb": duckdb.__version__,
                "records": con.execute("SELECT count(*) FROM records").fetchone()[0],
                "pensioners": con.execute("SELECT count(*) FROM pensioners").fetchone()[0],
                "true_records": n_true,
                "pairs_scored_at_min_threshold": n_pairs,
                "u_max_pairs": args.u_max_pairs,
                "em_name_block": args.em_name_block,
                "quality": quality,
                "model": trained,
                "timings": {k: round(v, 3) for k, v in timings.items()},
                "seconds": round(seconds, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
