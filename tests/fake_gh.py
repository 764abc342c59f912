#!/usr/bin/env python3
"""A stand-in for the `gh` command line that keeps issues in a JSON file and logs every call.

FAKE_GH_STATE names the JSON file with the issues; FAKE_GH_LOG the file that gets one JSON
array of arguments per call. Only the `gh issue` subcommands that matrix.regressions uses exist.
"""

import json
import os
import sys
from pathlib import Path


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def main(args: list[str]) -> int:
    with open(os.environ["FAKE_GH_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(args) + "\n")
    state_path = Path(os.environ["FAKE_GH_STATE"])
    state = json.loads(state_path.read_text()) if state_path.exists() else {"issues": []}
    issues = state["issues"]
    if args[:2] == ["issue", "list"]:
        wanted = option(args, "--state")
        print(
            json.dumps(
                [
                    {"number": i["number"], "title": i["title"]}
                    for i in issues
                    if i["state"] == wanted
                ]
            )
        )
        return 0
    if args[:2] == ["issue", "view"]:
        issue = issues[int(args[2]) - 1]
        print(
            json.dumps(
                {"body": issue["body"], "comments": [{"body": c} for c in issue["comments"]]}
            )
        )
        return 0
    if args[:2] == ["issue", "create"]:
        number = len(issues) + 1
        issues.append(
            {
                "number": number,
                "title": option(args, "--title"),
                "body": option(args, "--body"),
                "state": "open",
                "comments": [],
            }
        )
        print(f"https://github.invalid/o/r/issues/{number}")
    elif args[:2] == ["issue", "comment"]:
        issues[int(args[2]) - 1]["comments"].append(option(args, "--body"))
    elif args[:2] == ["issue", "close"]:
        issue = issues[int(args[2]) - 1]
        issue["state"] = "closed"
        issue["comments"].append(option(args, "--comment"))
    else:
        print(f"fake gh: unsupported {args}", file=sys.stderr)
        return 2
    state_path.write_text(json.dumps(state))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
