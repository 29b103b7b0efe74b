#!/usr/bin/env python3
"""Rewrites the `# expect:` lines of corpus files (Tests/SluiceConfigTests/Corpus) from what `sluiced check` says
now, keeping them where they were. Review the diff: every expectation is a claim about sluice's behaviour.

    python3 Scripts/corpus-expect.py .build/debug/sluiced Tests/SluiceConfigTests/Corpus/*.yaml
"""
import os
import subprocess
import sys


def diagnostics(sluiced, path):
    out = subprocess.run([sluiced, "check", "-c", path], capture_output=True, text=True)
    lines = []
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith(path + ":") and ": invalid:" not in line and ": ok" not in line:
            rest = line[len(path) + 1:]
            if rest[:1].isdigit():
                # The corpus test spells the corpus directory CORPUS, so that expectations hold anywhere.
                lines.append(rest.replace(os.path.dirname(path), "CORPUS"))
    return lines


def main():
    sluiced, files = sys.argv[1], sys.argv[2:]
    for path in map(os.path.abspath, files):
        text = open(path).read().split("\n")
        at = next((i for i, l in enumerate(text) if l.startswith("# expect: ")), None)
        body = [l for l in text if not l.startswith("# expect: ")]
        if at is None:
            # After the leading comment block.
            at = next((i for i, l in enumerate(body) if not l.startswith("#")), 0)
        for _ in range(3):
            found = diagnostics(sluiced, path)
            new = body[:at] + ["# expect: " + d for d in found] + body[at:]
            open(path, "w").write("\n".join(new))
            if diagnostics(sluiced, path) == found:
                break
        print(f"{path}: {len(found)} expectations")


main()
