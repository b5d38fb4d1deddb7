"""``python -m llmrouter.dashboard --policy P [--port 4001]``: the dashboard alone, over the
policy's ledger (useful next to replicas that share a PostgreSQL ledger)."""

from __future__ import annotations

import argparse


def main() -> None:
    import uvicorn

    from ..ledger import open_ledger
    from ..policy import load_policy
    from .app import DashboardApp

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--policy", default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4001)
    args = parser.parse_args()
    policy = load_policy(args.policy)
    app = DashboardApp(open_ledger(policy.ledger), policy.budgets)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
