"""The exact-ID peer of bench/feeds.py: DuckDB reads a sign-of-life feed (CSV), joins it on
the ID number with the pensioner roll (CSV) and groups by pensioner: records, and the sum
of the source's weight over the records within the last 90 days. Prints one JSON line.

The ID number is normalised as far as the join needs and no further: spaces removed,
full-width digits and a lower-case x folded, a legacy 15-digit number widened (century 19).
The join is on the first 17 characters, so the check character is not verified (lifecert
verifies it); a mistyped number simply finds no pensioner.

    python duckdb_exact.py --pensioners pensioners.csv --feed exact.csv --today 2026-11-30
"""

import argparse
import json
import time

import duckdb

WINDOW_DAYS = 90


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pensioners", required=True)
    ap.add_argument("--feed", required=True)
    ap.add_argument("--today", required=True, help="YYYY-MM-DD: the 90-day window ends here")
    ap.add_argument("--weight", type=float, default=1.0, help="the source's weight per record")
    ap.add_argument("--threads", type=int, default=None, help="default: DuckDB's (all cores)")
    args = ap.parse_args()

    started = time.perf_counter()
    con = duckdb.connect()
    if args.threads:
        con.execute(f"SET threads = {args.threads}")
    # The 17-character body of the ID number, from any of the ways feeds write it.
    clean = (
        "upper(translate(replace(id_number, ' ', ''), "
        "'０１２３４５６７８９Ｘｘ', '0123456789XX'))"
    )
    body = (
        f"CASE WHEN length({clean}) = 18 THEN left({clean}, 17) "
        f"WHEN length({clean}) = 15 THEN left({clean}, 6) || '19' || substr({clean}, 7, 9) END"
    )
    sql = f"""
    WITH pensioners AS (
        SELECT left(id_number, 17) AS body
        FROM read_csv(?, header = true, all_varchar = true)
    ),
    feed AS (
        SELECT {body} AS body, CAST(event_date AS DATE) AS event_date
        FROM read_csv(?, header = true, all_varchar = true)
    ),
    per_person AS (
        SELECT p.body,
               count(*) AS records,
               sum(CASE WHEN f.event_date > DATE '{args.today}' - INTERVAL {WINDOW_DAYS} DAY
                        THEN {args.weight} ELSE 0 END) AS weight
        FROM feed f JOIN pensioners p ON f.body = p.body
        GROUP BY p.body
    )
    SELECT count(*) AS persons,
           count(*) FILTER (WHERE weight >= 1.0) AS persons_certified,
           coalesce(sum(records), 0) AS matched_records
    FROM per_person
    """
    persons, certified, matched = con.execute(sql, [args.pensioners, args.feed]).fetchone()
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "tool": "duckdb",
                "version": duckdb.__version__,
                "threads": con.execute("SELECT current_setting('threads')").fetchone()[0],
                "persons": persons,
                "persons_certified": certified,
                "matched_records": int(matched),
                "seconds": round(seconds, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
