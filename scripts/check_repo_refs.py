#!/usr/bin/python3
"""Checks that the repository is self-contained and that its references resolve.

Fails (exit 1, one line per problem) when a tracked file
  - names a document that is not in the repository (the design notes or API research notes
    these docs were written from) or points into a machine's file system (/work/..., /home/...,
    /root/..., /Users/..., a shared directory next to the checkout);
  - cites docs/paykka.md by a section number that has no heading there (e.g. "§2.6", "section 5",
    "8.1", "2.2-2.3"), or docs/architecture.md by a quoted section name that has no heading;
  - names a docs/*.md file that does not exist, or (in Markdown) links to a relative path that
    does not exist or names a path in one of the repository's top-level folders that does not exist
    (`cache/README.md`; a stem such as `common/errors` stands for errors.h / errors.cc).
Run from anywhere: scripts/check_repo_refs.py [repo root]. CI runs it from scripts/test.sh.
"""
import bisect
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), ".."))
SELF = os.path.relpath(os.path.abspath(__file__), ROOT)

# Names of documents that live outside the repository, and machine paths. Spelled in pieces so
# that this file does not match itself when the check is run over a copy elsewhere.
OUTSIDE_DOCS = ["design", "paykka" + "-api", "style", "tool" + "chain"]
FORBIDDEN = [
    (re.compile(r"(?<![\w./-])(?:%s)\.md\b" % "|".join(map(re.escape, OUTSIDE_DOCS))),
     "names a document that is not in the repository"),
    (re.compile(r"\.\./" + "shared\\b"), "points at a directory outside the repository"),
    (re.compile(r"(?<![\w.~-])/(?:work|home|root|Users)/"), "absolute machine path"),
]

# A comment's line break: a newline, indentation and a comment marker. Collapsed to one space so
# that a citation wrapped across comment lines is still read as one.
WRAP = re.compile(r"\n[ \t]*(?://+|#+|\*+|--)?[ \t]*")
PAYKKA_CITE = re.compile(
    r"docs/paykka\.md\)?[,:]?\s*(?:§|section\s+|sections\s+)?(\d+(?:\.\d+)?)"
    r"(?:\s*[-\u2013]\s*(\d+(?:\.\d+)?))?")
PAYKKA_SELF_CITE = re.compile(r"§\s*(\d+(?:\.\d+)?)(?:\s*[-\u2013]\s*(\d+(?:\.\d+)?))?")
ARCH_CITE = re.compile(r"docs/architecture\.md(?:'s)?\)?[,:]?\s*\"([^\"]+)\"")
DOCS_NAME = re.compile(r"\bdocs/([\w.-]+\.md)\b")
MD_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
TOP_DIRS = ["adapters", "bench", "cache", "clients", "cmake", "common", "docs", "examples", "helm",
            "proto", "sandbox", "scripts", "server", "service", "tests"]
REPO_PATH = re.compile(r"(?<![\w./-])((?:%s)/[\w./-]*\w)" % "|".join(TOP_DIRS))
STEM_EXTENSIONS = ["", ".h", ".cc", ".md", ".py", ".sh", ".js", ".yaml", ".json", ".proto"]


def repo_path_exists(path):
    if "node_modules" in path.split("/"):
        return True  # installed by npm, git-ignored
    return any(os.path.exists(os.path.join(ROOT, path + ext)) for ext in STEM_EXTENSIONS)


def tracked_files():
    out = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], check=True,
                         capture_output=True).stdout
    return [p for p in out.decode().split("\0") if p]


def read_text(path):
    try:
        with open(os.path.join(ROOT, path), "rb") as f:
            data = f.read()
    except OSError:
        return None  # deleted in the working tree
    if b"\0" in data[:8192]:
        return None  # binary
    return data.decode("utf-8", errors="replace")


def headings(text):
    return [m.group(1).strip() for m in re.finditer(r"^#{1,6}\s+(.+)$", text, re.M)]


def section_numbers(text):
    nums = set()
    for h in headings(text):
        m = re.match(r"(\d+(?:\.\d+)*)\.?\s", h)
        if m:
            nums.add(m.group(1))
    return nums


def line_of(text, pos):
    return text.count("\n", 0, pos) + 1


def join_wrapped(text):
    """(text with comment line breaks collapsed, a function from its offsets to line numbers)."""
    pieces, breaks, last = [], [], 0
    for m in WRAP.finditer(text):
        pieces.append(text[last:m.start()])
        breaks.append(sum(map(len, pieces)))
        pieces.append(" ")
        last = m.end()
    pieces.append(text[last:])
    return "".join(pieces), lambda pos: bisect.bisect_right(breaks, pos) + 1


def main():
    problems = []
    cited = [0]
    files = tracked_files()
    docs = {p[len("docs/"):]: read_text(p) for p in files if p.startswith("docs/")}
    paykka_sections = section_numbers(docs.get("paykka.md") or "")
    arch_headings = [h.lower() for h in headings(docs.get("architecture.md") or "")]

    def check_number(path, line, num, what):
        cited[0] += 1
        if num not in paykka_sections:
            problems.append("%s:%d: %s cites docs/paykka.md section %s, which has no heading"
                            % (path, line, what, num))

    for path in files:
        if path == SELF:
            continue
        text = read_text(path)
        if text is None:
            continue
        for pattern, why in FORBIDDEN:
            for m in pattern.finditer(text):
                problems.append("%s:%d: %s: %r" % (path, line_of(text, m.start()), why, m.group(0)))
        joined, joined_line = join_wrapped(text)
        for m in DOCS_NAME.finditer(text):
            if m.group(1) not in docs:
                problems.append("%s:%d: names docs/%s, which does not exist"
                                % (path, line_of(text, m.start()), m.group(1)))
        for m in PAYKKA_CITE.finditer(joined):
            for num in filter(None, m.groups()):
                check_number(path, joined_line(m.start()), num, "it")
        if path == "docs/paykka.md":
            for m in PAYKKA_SELF_CITE.finditer(text):
                for num in filter(None, m.groups()):
                    check_number(path, line_of(text, m.start()), num, "a cross-reference")
        for m in ARCH_CITE.finditer(joined):
            name = m.group(1).strip().lower()
            cited[0] += 1
            if not any(h.startswith(name) for h in arch_headings):
                problems.append('%s:%d: cites docs/architecture.md "%s", which has no heading'
                                % (path, joined_line(m.start()), m.group(1)))
        if path.endswith(".md"):
            for m in REPO_PATH.finditer(text):
                if not repo_path_exists(m.group(1)):
                    problems.append("%s:%d: names %s, which does not exist"
                                    % (path, line_of(text, m.start()), m.group(1)))
            base = os.path.dirname(path)
            for m in MD_LINK.finditer(text):
                target = m.group(1)
                if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("/"):
                    continue  # a URL (absolute paths are caught above when they are machine paths)
                if not os.path.exists(os.path.join(ROOT, base, target)):
                    problems.append("%s:%d: link to %s, which does not exist"
                                    % (path, line_of(text, m.start()), target))

    for p in problems:
        print(p)
    print("repo references: %d files, %d section citations checked, %d problem(s)"
          % (len(files), cited[0], len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
